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
    [StreamSetting]
    public int NormalizationBatches { get; set; } = 10;
    /// <summary>Unit-norm decoder rows with the parallel gradient component removed (Anthropic / drrik).</summary>
    public bool UnitNormDecoder { get; set; }
    public double LpNorm { get; set; } = 1;
    public double AuxLossCoefficient { get; set; } = 1;
    public double JumpreluBandwidth { get; set; } = 0.05;
    public double JumpreluInitThreshold { get; set; } = 0.01;
    public string JumpreluSparsityLossMode { get; set; } = "step";
    /// <summary>jumprelu with the tanh sparsity loss: the scale inside tanh(scale · f · ‖W_dec‖).</summary>
    public double JumpreluTanhScale { get; set; } = 4;
    public double? PreActLossCoefficient { get; set; }
    public double TopkThresholdLr { get; set; } = 0.01;
    /// <summary>matryoshka_batchtopk: comma-separated increasing prefix widths ending with d_sae, e.g. "512,2048,4096".</summary>
    public string? MatryoshkaWidths { get; set; }
    /// <summary>matryoshka_batchtopk: AuxK per matryoshka level, its dead latents reconstructing that level's own residual (SAELens 6.x).</summary>
    public bool UseMatryoshkaAuxLoss { get; set; }

    // Hooks (TransformerLens names); in a sweep each SAE may read its own
    /// <summary>
    /// The hook the SAE reads, e.g. blocks.1.ln2.hook_normalized; several comma-separated are concatenated per
    /// position. Needed with --model; with --cache it defaults to the cache's hook; with --activations it is only recorded.
    /// </summary>
    public string? HookName { get; set; }
    /// <summary>A transcoder's target hook (SAELens hook_name_out), e.g. blocks.1.hook_mlp_out, read in the same forward as hook_name.</summary>
    public string? HookNameOut { get; set; }

    // Model activations (train --model): SAELens's ActivationsStore settings
    /// <summary>Context windows and model batching (context_size, prepend_bos, sequence_separator_token, store_batch_size_prompts).</summary>
    [SettingsGroup, StreamSetting]
    public ContextSettings Contexts { get; set; } = new();
    /// <summary>Drop positions holding the model's BOS/EOS tokens from training.</summary>
    [StreamSetting]
    public bool ExcludeSpecialTokens { get; set; }
    /// <summary>seqpos_slice: train on positions [seqpos_start, seqpos_end) only (Python slice; negative from the end).</summary>
    [StreamSetting]
    public int? SeqposStart { get; set; }
    [StreamSetting]
    public int? SeqposEnd { get; set; }
    /// <summary>One attention head's slice of a [heads, d_head] hook such as attn.hook_z (every hook of the stream).</summary>
    [StreamSetting]
    public int? HookHeadIndex { get; set; }
    /// <summary>Batches of model activations mixed in the shuffling buffer.</summary>
    [StreamSetting]
    public int NBatchesInBuffer { get; set; } = 20;

    /// <summary>The SAE's cfg for inputs of <paramref name="dIn"/> columns (and a transcoder's targets of <paramref name="dOut"/>).</summary>
    public SaeConfig SaeConfig(int dIn, int dOut = 0) => new()
    {
        Architecture = Architecture,
        DIn = dIn,
        DSae = DSae,
        DOut = SaeRegistry.Get(Architecture).Transcoder ? dOut : 0,
        K = SaeRegistry.Get(Architecture).TopK ? K : 0,
        // A transcoder's b_dec is d_out wide and never subtracted from the input (SAELens refuses it).
        ApplyBDecToInput = ApplyBDecToInput && !SaeRegistry.Get(Architecture).Transcoder,
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
        JumpReluTanhScale = JumpreluTanhScale,
        PreActLossCoefficient = PreActLossCoefficient,
        UseMatryoshkaAuxLoss = UseMatryoshkaAuxLoss,
    };

    public override void Validate(long? totalSteps = null)
    {
        var kind = SaeRegistry.Get(Architecture);
        if (BDecInit is not ("zeros" or "mean" or "median" or "geometric_median"))
            throw new ArgumentException($"b_dec_init: unknown value '{BDecInit}' (expected zeros, mean, median or geometric_median)");
        if (!Saes.SaeConfig.NormalizeModes.Contains(NormalizeActivations))
            throw new ArgumentException($"normalize_activations: unknown value '{NormalizeActivations}' (expected one of {string.Join(", ", Saes.SaeConfig.NormalizeModes)})");
        SaeConfig(1, 1).Validate();
        if (!kind.Transcoder && HookNameOut is not null)
            throw new ArgumentException($"hook_name_out: only transcoders predict a second hook; {Architecture} reconstructs hook_name (remove hook_name_out or pick a transcoder architecture)");
        if (UseMatryoshkaAuxLoss && !kind.CfgKeys.Contains("matryoshka_widths"))
            throw new ArgumentException($"use_matryoshka_aux_loss: applies to matryoshka SAEs only, not {Architecture}");
        if (!(JumpreluTanhScale > 0)) throw new ArgumentException($"jumprelu_tanh_scale must be positive, got {JumpreluTanhScale}");
        if (JumpreluSparsityLossMode is not ("step" or "tanh"))
            throw new ArgumentException($"jumprelu_sparsity_loss_mode: unknown value '{JumpreluSparsityLossMode}' (expected step or tanh)");
        Contexts.Validate();
        if (NBatchesInBuffer < 1) throw new ArgumentException($"n_batches_in_buffer must be at least 1, got {NBatchesInBuffer}");
        if (NormalizationBatches < 1) throw new ArgumentException($"normalization_batches must be at least 1, got {NormalizationBatches}");
        base.Validate(totalSteps);
    }
}
