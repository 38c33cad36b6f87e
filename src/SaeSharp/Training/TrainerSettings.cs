namespace SaeSharp.Training;

/// <summary>
/// Marks a setting that shapes the activation stream or the sequence of steps. The SAEs of a sweep train on one stream
/// in lock step, so they share these settings (set once, at the sweep's top level); every other setting may differ
/// from SAE to SAE.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class StreamSettingAttribute : Attribute;

/// <summary>
/// The trainer's settings, one property per setting with its SAELens name (the snake_case of the property name is
/// the key in YAML, <c>--set</c>, <c>SAESHARP_TRAIN__*</c> variables and train_settings.json) and its one default.
/// <c>Runs.TrainSettings</c> extends it with the SAE's and the activation stream's settings; a script may use either.
/// </summary>
public record TrainerSettings
{
    /// <summary>Optimiser steps (<see cref="DefaultSteps"/> when neither this, training_tokens nor epochs is set).</summary>
    [StreamSetting]
    public long? Steps { get; set; }
    /// <summary>SAELens training_tokens: the streaming budget in rows; steps = training_tokens / batch_size. Not with steps or epochs.</summary>
    [StreamSetting]
    public long? TrainingTokens { get; set; }
    /// <summary>drrik's fit mode: passes over an in-memory array (0: train for steps). An epoch is ⌊training rows / batch_size⌋ steps.</summary>
    [StreamSetting]
    public int Epochs { get; set; }
    /// <summary>Fit mode: the last fraction of rows held out for validation (drrik's validation_split; <see cref="DefaultValidationFraction"/> when unset).</summary>
    [StreamSetting]
    public double? ValidationFraction { get; set; }
    /// <summary>Rows per step (SAELens train_batch_size_tokens).</summary>
    [StreamSetting]
    public int BatchSize { get; set; } = 4096;
    public double Lr { get; set; } = 3e-4;
    public LrScheduler LrScheduler { get; set; } = LrScheduler.Constant;
    public long LrWarmUpSteps { get; set; }
    public long LrDecaySteps { get; set; }
    public double LrEnd { get; set; }
    public float AdamBeta1 { get; set; } = 0.9f;
    public float AdamBeta2 { get; set; } = 0.999f;
    /// <summary>Global gradient-norm clip; 0 disables.</summary>
    public double MaxGradNorm { get; set; } = 1.0;
    /// <summary>Sparsity penalty coefficient: L1 for standard and gated SAEs, L0 for jumprelu; unused by top-k kinds (SAELens l1_coefficient / l0_coefficient).</summary>
    public double L1Coefficient { get; set; } = 5;
    /// <summary>Steps over which the sparsity coefficient warms up linearly from 0.</summary>
    public long L1WarmUpSteps { get; set; }
    /// <summary>Steps without firing after which a latent counts as dead (AuxK, the pre-act loss, the reported dead count).</summary>
    public long DeadFeatureWindow { get; set; } = 1000;
    /// <summary>Steps over which feature density (sparsity.safetensors) is measured.</summary>
    public long FeatureSamplingWindow { get; set; } = 2000;
    public int MetricsEvery { get; set; } = 50;
    /// <summary>Steps between checkpoints; 0 writes none (an interrupted run then cannot resume).</summary>
    [StreamSetting]
    public long CheckpointEvery { get; set; } = 500;
    public ulong Seed { get; set; } = 42;
    /// <summary>Steps between dead-latent resamplings (Anthropic / drrik); 0 = off.</summary>
    public long ResampleInterval { get; set; }
    /// <summary>Steps without firing after which resampling re-initialises a latent.</summary>
    public long ResampleWindow { get; set; } = 1000;
    /// <summary>Recent input rows that resampling draws new directions from (∝ squared error²).</summary>
    public int ResampleSamples { get; set; } = 1024;
    /// <summary>
    /// The last step at which resampling may happen; unset means total steps − resample_interval, so every
    /// re-initialised latent trains for at least resample_interval steps before the run ends (Anthropic's and
    /// dictionary_learning's schedules also stop well before the end).
    /// </summary>
    public long? ResampleStopStep { get; set; }

    public const long DefaultSteps = 1000;
    public const double DefaultValidationFraction = 0.1;

    /// <summary>Fit mode: epochs over an in-memory array instead of a step budget.</summary>
    public bool FitMode => Epochs > 0;

    /// <summary>The fraction of rows fit mode holds out.</summary>
    public double HeldOutFraction() => ValidationFraction ?? DefaultValidationFraction;

    /// <summary>The step budget of a step-based run (fit mode derives its own from epochs and the data).</summary>
    public long TotalSteps() => Steps ?? (TrainingTokens is long t ? t / BatchSize : DefaultSteps);

    /// <summary>The last step that may resample in a run of <paramref name="totalSteps"/> steps.</summary>
    public long ResampleStop(long totalSteps) => ResampleStopStep ?? totalSteps - ResampleInterval;

    public LrSchedule Schedule(long totalSteps) => new(Lr, totalSteps, LrScheduler, LrWarmUpSteps, LrDecaySteps, LrEnd);

    /// <summary>
    /// Checks every setting that does not depend on the data; <paramref name="totalSteps"/> is the run's length when
    /// known (fit mode learns it from the data), against which the schedules are checked.
    /// </summary>
    public virtual void Validate(long? totalSteps = null)
    {
        if (BatchSize < 1) throw new ArgumentException($"batch_size must be at least 1, got {BatchSize}");
        if (MetricsEvery < 1) throw new ArgumentException($"metrics_every must be at least 1, got {MetricsEvery}");
        if (CheckpointEvery < 0) throw new ArgumentException($"checkpoint_every must be non-negative (0 writes none), got {CheckpointEvery}");
        if (!(L1Coefficient >= 0)) throw new ArgumentException($"l1_coefficient must be non-negative, got {L1Coefficient}");
        if (L1WarmUpSteps < 0) throw new ArgumentException($"l1_warm_up_steps must be non-negative, got {L1WarmUpSteps}");
        if (DeadFeatureWindow < 1) throw new ArgumentException($"dead_feature_window must be at least 1, got {DeadFeatureWindow}");
        if (FeatureSamplingWindow < 1) throw new ArgumentException($"feature_sampling_window must be at least 1, got {FeatureSamplingWindow}");
        if (ResampleInterval < 0) throw new ArgumentException($"resample_interval must be non-negative (0 disables resampling), got {ResampleInterval}");
        if (ResampleWindow < 1) throw new ArgumentException($"resample_window must be at least 1, got {ResampleWindow}");
        if (ResampleSamples < 1) throw new ArgumentException($"resample_samples must be at least 1, got {ResampleSamples}");
        if (ResampleStopStep < 0) throw new ArgumentException($"resample_stop_step must be non-negative, got {ResampleStopStep}");
        if (!(MaxGradNorm >= 0)) throw new ArgumentException($"max_grad_norm must be non-negative (0 disables clipping), got {MaxGradNorm}");
        if (Epochs < 0) throw new ArgumentException($"epochs must be non-negative (0 trains for steps), got {Epochs}");
        if (Steps < 1) throw new ArgumentException($"steps must be at least 1, got {Steps}");
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
        // In fit mode the step count comes from the data; the schedule is checked again once it is known.
        Schedule(totalSteps ?? (FitMode ? long.MaxValue / 2 : TotalSteps())).Validate();
    }

    /// <summary>
    /// Warnings about settings that are valid but probably not what was meant, for a run of
    /// <paramref name="totalSteps"/> steps (e.g. resampling so late that re-initialised latents go untrained).
    /// </summary>
    public IEnumerable<string> Warnings(long totalSteps)
    {
        if (ResampleInterval <= 0) yield break;
        if (ResampleInterval >= totalSteps)
            yield return $"resample_interval {ResampleInterval} is not below the run's {totalSteps} steps: no latent will be resampled";
        else if (ResampleStop(totalSteps) > totalSteps - ResampleInterval)
        {
            long last = Math.Min(ResampleStop(totalSteps), totalSteps) / ResampleInterval * ResampleInterval;
            if (last > totalSteps - ResampleInterval)
                yield return $"resample_stop_step {ResampleStopStep} lets resampling happen at step {last}, {totalSteps - last} steps before the end: " +
                             $"latents re-initialised then get fewer than resample_interval ({ResampleInterval}) steps of training";
        }
    }
}
