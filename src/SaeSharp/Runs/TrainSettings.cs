using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Saes;
using SaeSharp.Training;

namespace SaeSharp.Runs;

/// <summary>
/// Every setting of a training run, in one typed record bound from YAML, SAESHARP_TRAIN__* variables, --set and flags
/// (SAELens names, snake_case) or set from C#: the SAE's and the activation stream's settings here, the optimiser's
/// and the schedule's in <see cref="TrainerSettings"/>. Unknown keys are errors.
/// </summary>
public sealed record TrainSettings : TrainerSettings
{
    // SAE
    public string Architecture { get; set; } = "topk";
    public int DSae { get; set; } = 4096;
    public int K { get; set; } = 32;
    public bool ApplyBDecToInput { get; set; } = true;
    public bool RescaleActsByDecoderNorm { get; set; }
    public double DecoderInitNorm { get; set; } = 0.1;
    /// <summary>zeros, mean, median (coordinate-wise, drrik) or geometric_median.</summary>
    public string BDecInit { get; set; } = "zeros";
    /// <summary>
    /// none, expected_average_only_in (scale estimated before training, folded into the weights after), or
    /// constant_norm_rescale / layer_norm (applied per row inside the SAE, kept in its cfg.json).
    /// </summary>
    public string NormalizeActivations { get; set; } = "none";
    public int NormalizationBatches { get; set; } = 10;
    /// <summary>Unit-norm decoder rows with the parallel gradient component removed (Anthropic / drrik).</summary>
    public bool UnitNormDecoder { get; set; }
    public double LpNorm { get; set; } = 1;
    public double AuxLossCoefficient { get; set; } = 1;
    public double JumpreluBandwidth { get; set; } = 0.05;
    public double JumpreluInitThreshold { get; set; } = 0.01;
    public string JumpreluSparsityLossMode { get; set; } = "step";
    public double? PreActLossCoefficient { get; set; }
    public double TopkThresholdLr { get; set; } = 0.01;
    /// <summary>matryoshka_batchtopk: comma-separated increasing prefix widths ending with d_sae, e.g. "512,2048,4096".</summary>
    public string? MatryoshkaWidths { get; set; }

    // Model activations (train --model): SAELens's ActivationsStore settings
    /// <summary>Context windows and model batching (context_size, prepend_bos, sequence_separator_token, store_batch_size_prompts).</summary>
    [SettingsGroup]
    public ContextSettings Contexts { get; set; } = new();
    /// <summary>Drop positions holding the model's BOS/EOS tokens from training.</summary>
    public bool ExcludeSpecialTokens { get; set; }
    /// <summary>seqpos_slice: train on positions [seqpos_start, seqpos_end) only (Python slice; negative from the end).</summary>
    public int? SeqposStart { get; set; }
    public int? SeqposEnd { get; set; }
    /// <summary>One attention head's slice of a [heads, d_head] hook such as attn.hook_z.</summary>
    public int? HookHeadIndex { get; set; }
    /// <summary>Batches of model activations mixed in the shuffling buffer.</summary>
    public int NBatchesInBuffer { get; set; } = 20;

    public SaeConfig SaeConfig(int dIn) => new()
    {
        Architecture = Architecture,
        DIn = dIn,
        DSae = DSae,
        K = SaeRegistry.Get(Architecture).TopK ? K : 0,
        ApplyBDecToInput = ApplyBDecToInput,
        NormalizeActivations = NormalizeActivations is "constant_norm_rescale" or "layer_norm" ? NormalizeActivations : "none",
        MatryoshkaWidths = SaeRegistry.Get(Architecture).CfgKeys.Contains("matryoshka_widths") ? ParseWidths() : null,
        RescaleActsByDecoderNorm = RescaleActsByDecoderNorm,
        JumpReluBandwidth = JumpreluBandwidth,
        JumpReluInitThreshold = JumpreluInitThreshold,
        TopKThresholdLr = TopkThresholdLr,
    };

    private int[] ParseWidths()
    {
        if (string.IsNullOrWhiteSpace(MatryoshkaWidths)) throw new ArgumentException("matryoshka_widths: required for matryoshka_batchtopk (comma-separated prefix widths ending with d_sae)");
        try { return [.. MatryoshkaWidths.Split(',', StringSplitOptions.TrimEntries).Select(w => int.Parse(w, System.Globalization.CultureInfo.InvariantCulture))]; }
        catch (Exception e) when (e is FormatException or OverflowException) { throw new ArgumentException($"matryoshka_widths: expected comma-separated integers, got '{MatryoshkaWidths}'"); }
    }

    public SaeLossOptions LossOptions() => new()
    {
        LpNorm = LpNorm,
        AuxKCoefficient = AuxLossCoefficient,
        JumpReluSparsityMode = JumpreluSparsityLossMode,
        PreActLossCoefficient = PreActLossCoefficient,
    };

    public override void Validate(long? totalSteps = null)
    {
        var kind = SaeRegistry.Get(Architecture);
        if (BDecInit is not ("zeros" or "mean" or "median" or "geometric_median"))
            throw new ArgumentException($"b_dec_init: unknown value '{BDecInit}' (expected zeros, mean, median or geometric_median)");
        if (!Saes.SaeConfig.NormalizeModes.Contains(NormalizeActivations))
            throw new ArgumentException($"normalize_activations: unknown value '{NormalizeActivations}' (expected one of {string.Join(", ", Saes.SaeConfig.NormalizeModes)})");
        if (kind.Transcoder)
            throw new ArgumentException($"architecture: {Architecture} needs paired input/output activations, which `train` does not stream yet");
        if (kind.CfgKeys.Contains("matryoshka_widths")) SaeConfig(1).Validate();
        if (JumpreluSparsityLossMode is not ("step" or "tanh"))
            throw new ArgumentException($"jumprelu_sparsity_loss_mode: unknown value '{JumpreluSparsityLossMode}' (expected step or tanh)");
        Contexts.Validate();
        if (NBatchesInBuffer < 1) throw new ArgumentException($"n_batches_in_buffer must be at least 1, got {NBatchesInBuffer}");
        if (NormalizationBatches < 1) throw new ArgumentException($"normalization_batches must be at least 1, got {NormalizationBatches}");
        base.Validate(totalSteps);
    }
}
