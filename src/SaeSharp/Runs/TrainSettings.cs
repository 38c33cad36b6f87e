using SaeSharp.Saes;
using SaeSharp.Training;

namespace SaeSharp.Runs;

/// <summary>
/// Every setting of a training run, in one typed record bound from YAML, SAESHARP_TRAIN__* variables and flags
/// (SAELens names, snake_case). Unknown keys are errors.
/// </summary>
public sealed record TrainSettings
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

    // Optimisation
    /// <summary>Optimiser steps (<see cref="DefaultSteps"/> when unset); mutually exclusive with <see cref="Epochs"/>.</summary>
    public long? Steps { get; set; }
    /// <summary>SAELens training_tokens: the streaming budget in rows; steps = training_tokens / batch_size. Not with steps or epochs.</summary>
    public long? TrainingTokens { get; set; }
    /// <summary>drrik fit mode: passes over the activations array; 0 = train for <see cref="Steps"/>.</summary>
    public int Epochs { get; set; }
    /// <summary>Fit mode: the last fraction of rows held out for validation (drrik's validation_split; <see cref="DefaultValidationFraction"/> when unset).</summary>
    public double? ValidationFraction { get; set; }
    public int BatchSize { get; set; } = 4096;
    public double Lr { get; set; } = 3e-4;
    public LrScheduler LrScheduler { get; set; } = LrScheduler.Constant;
    public long LrWarmUpSteps { get; set; }
    public long LrDecaySteps { get; set; }
    public double LrEnd { get; set; }
    public float AdamBeta1 { get; set; } = 0.9f;
    public float AdamBeta2 { get; set; } = 0.999f;
    public double MaxGradNorm { get; set; } = 1.0;
    /// <summary>L1 (standard, gated) or L0 (jumprelu) coefficient.</summary>
    public double L1Coefficient { get; set; } = 5;
    public long L1WarmUpSteps { get; set; }
    public long DeadFeatureWindow { get; set; } = 1000;
    public long FeatureSamplingWindow { get; set; } = 2000;
    public int MetricsEvery { get; set; } = 50;
    public long CheckpointEvery { get; set; } = 500;
    public ulong Seed { get; set; } = 42;
    /// <summary>Steps between dead-latent resamplings (Anthropic / drrik); 0 = off.</summary>
    public long ResampleInterval { get; set; }
    /// <summary>Steps without firing after which resampling re-initialises a latent.</summary>
    public long ResampleWindow { get; set; } = 1000;
    /// <summary>Recent input rows that resampling draws new directions from (∝ squared error²).</summary>
    public int ResampleSamples { get; set; } = 1024;

    public const long DefaultSteps = 1000;
    public const double DefaultValidationFraction = 0.1;

    /// <summary>The fraction of rows fit mode holds out.</summary>
    public double HeldOutFraction() => ValidationFraction ?? DefaultValidationFraction;

    /// <summary>The step budget of a step-based run (fit mode derives its own from epochs and the data).</summary>
    public long TotalSteps() => Steps ?? (TrainingTokens is long t ? t / BatchSize : DefaultSteps);

    [System.Text.Json.Serialization.JsonIgnore]
    public bool FitMode => Epochs > 0;

    public FitOptions FitOptions() => new() { Epochs = Epochs, ValidationFraction = HeldOutFraction() };

    // Model activations (train --model): SAELens's ActivationsStore settings
    public int ContextSize { get; set; } = 128;
    /// <summary>BOS begins every context window.</summary>
    public bool PrependBos { get; set; } = true;
    /// <summary>Token between concatenated documents: bos, eos, none or a token id.</summary>
    public string SequenceSeparatorToken { get; set; } = "bos";
    /// <summary>Drop positions holding the model's BOS/EOS tokens from training.</summary>
    public bool ExcludeSpecialTokens { get; set; }
    /// <summary>seqpos_slice: train on positions [seqpos_start, seqpos_end) only (Python slice; negative from the end).</summary>
    public int? SeqposStart { get; set; }
    public int? SeqposEnd { get; set; }
    /// <summary>One attention head's slice of a [heads, d_head] hook such as attn.hook_z.</summary>
    public int? HookHeadIndex { get; set; }
    public int StoreBatchSizePrompts { get; set; } = 32;
    public int NBatchesInBuffer { get; set; } = 20;

    public SaeConfig SaeConfig(int dIn) => new()
    {
        Architecture = Architecture,
        DIn = dIn,
        DSae = DSae,
        K = IsTopK ? K : 0,
        ApplyBDecToInput = ApplyBDecToInput,
        NormalizeActivations = NormalizeActivations is "constant_norm_rescale" or "layer_norm" ? NormalizeActivations : "none",
        MatryoshkaWidths = Architecture == "matryoshka_batchtopk" ? ParseWidths() : null,
        RescaleActsByDecoderNorm = RescaleActsByDecoderNorm,
        JumpReluBandwidth = JumpreluBandwidth,
        JumpReluInitThreshold = JumpreluInitThreshold,
        TopKThresholdLr = TopkThresholdLr,
    };

    private bool IsTopK => Architecture is "topk" or "batchtopk" or "matryoshka_batchtopk";

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

    public TrainerConfig TrainerConfig() => new()
    {
        TotalSteps = TotalSteps(),
        BatchSize = BatchSize,
        Lr = Lr,
        LrScheduler = LrScheduler,
        LrWarmupSteps = LrWarmUpSteps,
        LrDecaySteps = LrDecaySteps,
        LrEnd = LrEnd,
        AdamBeta1 = AdamBeta1,
        AdamBeta2 = AdamBeta2,
        MaxGradNorm = MaxGradNorm,
        SparsityCoefficient = IsTopK ? 0 : L1Coefficient,
        SparsityWarmupSteps = L1WarmUpSteps,
        DeadFeatureWindow = DeadFeatureWindow,
        FeatureSamplingWindow = FeatureSamplingWindow,
        MetricsEvery = MetricsEvery,
        CheckpointEvery = CheckpointEvery,
        Seed = Seed,
        ResampleInterval = ResampleInterval,
        ResampleWindow = ResampleWindow,
        ResampleSamples = ResampleSamples,
    };

    public void Validate()
    {
        if (BDecInit is not ("zeros" or "mean" or "median" or "geometric_median"))
            throw new ArgumentException($"b_dec_init: unknown value '{BDecInit}' (expected zeros, mean, median or geometric_median)");
        if (!Saes.SaeConfig.NormalizeModes.Contains(NormalizeActivations))
            throw new ArgumentException($"normalize_activations: unknown value '{NormalizeActivations}' (expected one of {string.Join(", ", Saes.SaeConfig.NormalizeModes)})");
        if (Architecture is "transcoder" or "skip_transcoder")
            throw new ArgumentException($"architecture: {Architecture} needs paired input/output activations, which `train` does not stream yet");
        if (Architecture == "matryoshka_batchtopk") SaeConfig(1).Validate();
        if (JumpreluSparsityLossMode is not ("step" or "tanh"))
            throw new ArgumentException($"jumprelu_sparsity_loss_mode: unknown value '{JumpreluSparsityLossMode}' (expected step or tanh)");
        if (ContextSize < 2) throw new ArgumentException($"context_size must be at least 2, got {ContextSize}");
        if (StoreBatchSizePrompts < 1) throw new ArgumentException($"store_batch_size_prompts must be at least 1, got {StoreBatchSizePrompts}");
        if (NBatchesInBuffer < 1) throw new ArgumentException($"n_batches_in_buffer must be at least 1, got {NBatchesInBuffer}");
        if (NormalizationBatches < 1) throw new ArgumentException($"normalization_batches must be at least 1, got {NormalizationBatches}");
        if (Epochs < 0) throw new ArgumentException($"epochs must be non-negative (0 trains for steps), got {Epochs}");
        if (TrainingTokens is not null && (Steps is not null || Epochs > 0))
            throw new ArgumentException("training_tokens sets the number of steps (training_tokens / batch_size); give it, steps or epochs, not several");
        if (TrainingTokens is long tokens && tokens < BatchSize)
            throw new ArgumentException($"training_tokens must be at least batch_size ({BatchSize}), got {tokens}");
        if (Epochs > 0 && Steps is not null)
            throw new ArgumentException($"epochs and steps are mutually exclusive: with epochs = {Epochs} the run is epochs × ⌊training rows / batch_size⌋ steps; leave steps unset");
        if (ValidationFraction is { } vf && !(vf >= 0 && vf < 1))
            throw new ArgumentException($"validation_fraction must be in [0, 1), got {vf}");
        if (Epochs == 0 && ValidationFraction is not null)
            throw new ArgumentException("validation_fraction applies only to fit mode; set epochs too (or remove validation_fraction)");
        // In fit mode the step count comes from the data; the trainer checks the schedule against it.
        (FitMode ? TrainerConfig() with { TotalSteps = long.MaxValue / 2 } : TrainerConfig()).Validate();
    }
}
