using System.Diagnostics;
using System.Globalization;
using SaeSharp.Data;
using SaeSharp.Evals;
using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>Settings of one training run (SAELens names in the comments).</summary>
public sealed record TrainerConfig
{
    /// <summary>Optimiser steps to take (training_tokens / train_batch_size_tokens).</summary>
    public long TotalSteps { get; init; } = 1000;
    /// <summary>Rows per batch (train_batch_size_tokens).</summary>
    public int BatchSize { get; init; } = 4096;
    public double Lr { get; init; } = 3e-4;
    public LrScheduler LrScheduler { get; init; } = LrScheduler.Constant;
    public long LrWarmupSteps { get; init; }
    public long LrDecaySteps { get; init; }
    public double LrEnd { get; init; }
    public float AdamBeta1 { get; init; } = 0.9f;
    public float AdamBeta2 { get; init; } = 0.999f;
    /// <summary>Global gradient-norm clip; 0 disables.</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>L1 / L0 coefficient (l1_coefficient); ignored by architectures without a sparsity penalty.</summary>
    public double SparsityCoefficient { get; init; }
    public long SparsityWarmupSteps { get; init; }
    /// <summary>Steps without firing after which a latent counts as dead (dead_feature_window).</summary>
    public long DeadFeatureWindow { get; init; } = 1000;
    /// <summary>Steps over which feature density is measured (feature_sampling_window).</summary>
    public long FeatureSamplingWindow { get; init; } = 2000;
    public int MetricsEvery { get; init; } = 50;
    /// <summary>Steps between checkpoints; 0 writes none.</summary>
    public long CheckpointEvery { get; init; }
    public ulong Seed { get; init; } = 42;
    /// <summary>Steps between dead-latent resamplings (Anthropic / drrik); 0 disables resampling.</summary>
    public long ResampleInterval { get; init; }
    /// <summary>A latent is resampled when it has not fired in this many steps (drrik's sliding window).</summary>
    public long ResampleWindow { get; init; } = 1000;
    /// <summary>How many of the most recent input rows resampling draws its new directions from.</summary>
    public int ResampleSamples { get; init; } = 1024;
    /// <summary>
    /// Fit mode (drrik's <c>fit</c>): steps per epoch over an in-memory array; at the end of every epoch the trainer
    /// logs the epoch's mean training loss and L0 and, with validation rows, their MSE and L0 (epochs.jsonl, metrics,
    /// progress). 0 = no epochs. <see cref="FitRunner"/> sets it.
    /// </summary>
    public long StepsPerEpoch { get; init; }

    public LrSchedule Schedule => new(Lr, TotalSteps, LrScheduler, LrWarmupSteps, LrDecaySteps, LrEnd);

    public void Validate()
    {
        if (BatchSize < 1) throw new ArgumentException($"batch size must be at least 1, got {BatchSize}");
        if (MetricsEvery < 1) throw new ArgumentException($"metrics interval must be at least 1, got {MetricsEvery}");
        if (CheckpointEvery < 0) throw new ArgumentException($"checkpoint interval must be non-negative, got {CheckpointEvery}");
        if (SparsityCoefficient < 0) throw new ArgumentException($"sparsity coefficient must be non-negative, got {SparsityCoefficient}");
        if (FeatureSamplingWindow < 1) throw new ArgumentException($"feature sampling window must be at least 1, got {FeatureSamplingWindow}");
        if (ResampleInterval < 0) throw new ArgumentException($"resample_interval must be non-negative (0 disables resampling), got {ResampleInterval}");
        if (ResampleWindow < 1) throw new ArgumentException($"resample_window must be at least 1, got {ResampleWindow}");
        if (ResampleSamples < 1) throw new ArgumentException($"resample_samples must be at least 1, got {ResampleSamples}");
        if (StepsPerEpoch < 0) throw new ArgumentException($"steps per epoch must be non-negative, got {StepsPerEpoch}");
        Schedule.Validate();
    }
}

/// <summary>Progress of a run, reported after every step; <paramref name="Epoch"/> is set on the step that ends an epoch (fit mode).</summary>
public sealed record TrainProgress(long Step, long TotalSteps, double Loss, double L0, double ExplainedVariance, double TokensPerSecond, EpochMetrics? Epoch = null);

/// <summary>What a finished (or interrupted) run reached; <paramref name="LastEpoch"/> is the last epoch this call completed (fit mode).</summary>
public sealed record TrainSummary(long Steps, long TokensSeen, bool Interrupted, IReadOnlyDictionary<string, double> LastMetrics, float[] Log10Density, int DeadLatents,
    EpochMetrics? LastEpoch = null);

/// <summary>
/// One epoch of fit mode, as drrik reports it: the means over the epoch's batches of the training loss (the overall
/// loss, penalty included), MSE and L0, and the MSE (drrik's val_loss), L0 and explained variance on the validation
/// rows after the epoch (NaN without validation rows).
/// </summary>
public sealed record EpochMetrics(long Epoch, long Epochs, long Step, double TrainLoss, double TrainMse, double TrainL0,
    double ValLoss, double ValL0, double ValExplainedVariance)
{
    /// <summary>The epoch's line of epochs.jsonl (and the keys added to that step's metrics line).</summary>
    public Dictionary<string, double> ToDictionary() => new()
    {
        ["step"] = Step,
        ["epoch"] = Epoch,
        ["epochs"] = Epochs,
        ["train_loss"] = TrainLoss,
        ["train_mse"] = TrainMse,
        ["train_l0"] = TrainL0,
        ["val_loss"] = ValLoss,
        ["val_l0"] = ValL0,
        ["val_explained_variance"] = ValExplainedVariance,
    };
}

/// <summary>
/// The training loop: batches from an <see cref="IActivationSource"/>, forward + backward by the SAE, gradient
/// clipping, Adam with a scheduled learning rate, firing statistics, metrics.jsonl, and checkpoints from which a
/// resumed run continues bit for bit. Cancellation (SIGINT/SIGTERM in the CLI) writes a checkpoint and returns.
/// Optionally resamples dead latents (<see cref="Training.Resampler"/>) and, in fit mode (<see cref="FitRunner"/>),
/// closes every epoch with training means and validation metrics.
/// </summary>
public sealed class Trainer
{
    private readonly ITrainableSae _sae;
    private readonly IActivationSource _source;
    private readonly TrainerConfig _cfg;
    private readonly string _runDir;
    private readonly Compute _compute;
    private readonly Adam _adam;
    private readonly FiringTracker _tracker;
    private readonly Resampler? _resampler;
    private long _resampledSinceLog;
    private readonly Tensor? _validation;
    private double _epochLoss, _epochMse, _epochL0;
    private long _epochSteps;
    private readonly Dictionary<string, Tensor> _grads;
    private long _step;
    private long _tokens;
    private float[]? _lastWindowDensity;

    public string CheckpointDir => Path.Combine(_runDir, "checkpoints");
    public string MetricsPath => Path.Combine(_runDir, "metrics.jsonl");
    /// <summary>One line per finished epoch in fit mode (<see cref="TrainerConfig.StepsPerEpoch"/> &gt; 0).</summary>
    public string EpochsPath => Path.Combine(_runDir, "epochs.jsonl");
    public FiringTracker Tracker => _tracker;
    /// <summary>The dead-latent resampler, or null when <see cref="TrainerConfig.ResampleInterval"/> is 0.</summary>
    public Resampler? Resampler => _resampler;
    public Adam Optimizer => _adam;
    public long Step => _step;

    /// <param name="validation">Held-out rows evaluated at the end of every epoch (fit mode); never trained on.</param>
    public Trainer(ITrainableSae sae, IActivationSource source, TrainerConfig cfg, string runDir, Compute? compute = null, Tensor? validation = null)
    {
        cfg.Validate();
        if (source.Dim != sae.DIn) throw new ArgumentException($"activations have d_in {source.Dim}, SAE expects {sae.DIn}");
        if (validation is not null && (validation.Rank != 2 || validation.Cols != sae.DIn))
            throw new ArgumentException($"validation rows must be [n, {sae.DIn}], got [{validation.ShapeString}]");
        if (validation is not null && cfg.StepsPerEpoch == 0) throw new ArgumentException("validation rows need epochs (steps per epoch > 0)");
        _validation = validation;
        _sae = sae; _source = source; _cfg = cfg; _runDir = runDir;
        _compute = compute ?? Compute.All;
        _adam = new Adam(sae.Parameters, cfg.AdamBeta1, cfg.AdamBeta2);
        _tracker = new FiringTracker(sae.DSae, cfg.DeadFeatureWindow);
        if (cfg.ResampleInterval > 0)
            _resampler = new Resampler(sae.DIn, sae.DSae, cfg.ResampleWindow, cfg.ResampleSamples, ResamplerSeed(cfg.Seed));
        _grads = sae.Parameters.ToDictionary(kv => kv.Key, kv => new Tensor(kv.Value.Shape.ToArray()), StringComparer.Ordinal);
    }

    /// <summary>The resampler's RNG seed: derived from the run seed, independent of every other stream.</summary>
    public static ulong ResamplerSeed(ulong seed) => new Rng(seed ^ 0x5245_5341_4D50_4C45UL).NextUInt64();

    /// <summary>Restores the newest checkpoint in the run folder, if any; returns the step it resumes from.</summary>
    public long ResumeIfPossible()
    {
        var latest = Checkpoint.LoadLatest(CheckpointDir);
        if (latest is null) return 0;
        var (cp, step) = latest.Value;
        foreach (var (name, p) in _sae.Parameters)
        {
            Copy(cp.RequireTensor("param." + name), p, name);
            Copy(cp.RequireTensor("adam_m." + name), (Tensor)_adam.FirstMoment[name], name);
            Copy(cp.RequireTensor("adam_v." + name), (Tensor)_adam.SecondMoment[name], name);
        }
        cp.RequireIntegers("tracker.steps_since_fired").CopyTo(_tracker.StepsSinceFired, 0);
        cp.RequireIntegers("tracker.window_counts").CopyTo(_tracker.WindowCounts, 0);
        _tracker.WindowTokens = long.Parse(cp.Require("tracker.window_tokens"), CultureInfo.InvariantCulture);
        _adam.Step = long.Parse(cp.Require("adam_step"), CultureInfo.InvariantCulture);
        _tokens = long.Parse(cp.Require("tokens_seen"), CultureInfo.InvariantCulture);
        _sae.RestoreScalarState(cp.State.Where(kv => kv.Key.StartsWith("sae.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key["sae.".Length..], kv => double.Parse(kv.Value, CultureInfo.InvariantCulture)));
        _source.Restore(cp.State.Where(kv => kv.Key.StartsWith("source.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key["source.".Length..], kv => kv.Value));
        if (_resampler is not null)
        {
            _resampler.Restore(cp);
            _resampledSinceLog = long.Parse(cp.Require("resampler.since_log"), CultureInfo.InvariantCulture);
        }
        if (_cfg.StepsPerEpoch > 0)
        {
            _epochLoss = double.Parse(cp.Require("epoch.loss_sum"), CultureInfo.InvariantCulture);
            _epochMse = double.Parse(cp.Require("epoch.mse_sum"), CultureInfo.InvariantCulture);
            _epochL0 = double.Parse(cp.Require("epoch.l0_sum"), CultureInfo.InvariantCulture);
            _epochSteps = long.Parse(cp.Require("epoch.steps"), CultureInfo.InvariantCulture);
            MetricsLog.TruncateAfterStep(EpochsPath, step);
        }
        _step = step;
        MetricsLog.TruncateAfterStep(MetricsPath, step);
        return step;
    }

    private static void Copy(Tensor from, Tensor to, string name)
    {
        if (!from.SameShape(to)) throw new InvalidDataException($"checkpoint tensor '{name}' has shape [{from.ShapeString}], the SAE has [{to.ShapeString}]");
        from.Span.CopyTo(to.Span);
    }

    public void SaveCheckpoint()
    {
        var cp = new Checkpoint();
        foreach (var (name, p) in _sae.Parameters)
        {
            cp.Tensors["param." + name] = p;
            cp.Tensors["adam_m." + name] = _adam.FirstMoment[name];
            cp.Tensors["adam_v." + name] = _adam.SecondMoment[name];
        }
        cp.Integers["tracker.steps_since_fired"] = _tracker.StepsSinceFired;
        cp.Integers["tracker.window_counts"] = _tracker.WindowCounts;
        cp.State["tracker.window_tokens"] = _tracker.WindowTokens.ToString(CultureInfo.InvariantCulture);
        cp.State["adam_step"] = _adam.Step.ToString(CultureInfo.InvariantCulture);
        cp.State["tokens_seen"] = _tokens.ToString(CultureInfo.InvariantCulture);
        foreach (var (k, v) in _source.Position) cp.State["source." + k] = v;
        foreach (var (k, v) in _sae.ScalarState) cp.State["sae." + k] = v.ToString("R", CultureInfo.InvariantCulture);
        if (_resampler is not null)
        {
            _resampler.Save(cp);
            cp.State["resampler.since_log"] = _resampledSinceLog.ToString(CultureInfo.InvariantCulture);
        }
        if (_cfg.StepsPerEpoch > 0)
        {
            cp.State["epoch.loss_sum"] = _epochLoss.ToString("R", CultureInfo.InvariantCulture);
            cp.State["epoch.mse_sum"] = _epochMse.ToString("R", CultureInfo.InvariantCulture);
            cp.State["epoch.l0_sum"] = _epochL0.ToString("R", CultureInfo.InvariantCulture);
            cp.State["epoch.steps"] = _epochSteps.ToString(CultureInfo.InvariantCulture);
        }
        cp.Save(CheckpointDir, _step);
    }

    /// <summary>Trains until <see cref="TrainerConfig.TotalSteps"/>, the source ends, or cancellation.</summary>
    public TrainSummary Run(CancellationToken cancel = default, Action<TrainProgress>? progress = null)
    {
        var batch = Tensor.Uninitialized(_cfg.BatchSize, _sae.DIn);
        var schedule = _cfg.Schedule;
        var sparsity = new CoefficientWarmup(_cfg.SparsityCoefficient, _cfg.SparsityWarmupSteps);
        IReadOnlyDictionary<string, double> last = new Dictionary<string, double>();
        bool interrupted = false;
        var clock = Stopwatch.StartNew();
        long tokensAtStart = _tokens;
        using var log = new MetricsLog(MetricsPath, append: _step > 0);
        using var epochLog = _cfg.StepsPerEpoch > 0 ? new MetricsLog(EpochsPath, append: _step > 0) : null;
        EpochMetrics? lastEpoch = null;
        while (_step < _cfg.TotalSteps)
        {
            if (cancel.IsCancellationRequested) { interrupted = true; break; }
            if (!_source.Next(batch)) break;
            if (Ops.HasNonFinite(batch.Span))
                throw new InvalidDataException($"step {_step + 1}: the activation batch contains NaN or infinite values; training stopped (the last checkpoint is untouched)");
            double coefficient = sparsity.At(_step);
            var result = _sae.ForwardBackward(batch, batch, new StepInputs(coefficient, _tracker.DeadMask()), _grads);
            foreach (var (name, value) in result.Losses)
                if (!double.IsFinite(value))
                    throw new InvalidDataException($"step {_step + 1}: loss '{name}' is {value}; training stopped (the last checkpoint is untouched)");
            _sae.BeforeOptimizerStep(_grads);
            double gradNorm = Adam.ClipGradNorm(_grads.Values, _cfg.MaxGradNorm, _compute);
            if (!double.IsFinite(gradNorm))
                throw new InvalidDataException($"step {_step + 1}: gradient norm is {gradNorm}; training stopped (the last checkpoint is untouched)");
            double lr = schedule.At(_step);
            _adam.Update(_sae.Parameters, _grads, (float)lr, _compute);
            _sae.AfterOptimizerStep();
            var firingCounts = result.Codes.FiringCounts(_compute);
            _tracker.Record(firingCounts, batch.Rows);
            _resampler?.Record(batch, firingCounts);
            _step++;
            if (_resampler is not null && _step % _cfg.ResampleInterval == 0)
                _resampledSinceLog += _resampler.Resample(_sae, _adam).Count;
            _tokens += batch.Rows;
            if (_step % _cfg.FeatureSamplingWindow == 0)
            {
                _lastWindowDensity = _tracker.Log10Density();
                _tracker.ResetWindow();
            }

            // L0 counts positive activations (SAELens: (feature_acts > 0)), not code entries: top-k keeps zeros after
            // its ReLU, and a jumprelu's sparse codes carry entries its backward needs that did not fire.
            long firing = 0;
            foreach (int c in firingCounts) firing += c;
            double l0 = (double)firing / batch.Rows;
            double ev = Reconstruction.ExplainedVariance(batch, result.Reconstruction);
            double tps = (_tokens - tokensAtStart) / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            double overall = result.Losses.GetValueOrDefault("overall_loss");
            EpochMetrics? epoch = null;
            if (_cfg.StepsPerEpoch > 0)
            {
                _epochLoss += overall;
                _epochMse += Reconstruction.Mse(batch, result.Reconstruction);
                _epochL0 += l0;
                _epochSteps++;
                if (_step % _cfg.StepsPerEpoch == 0) epoch = lastEpoch = FinishEpoch();
            }
            if (_step % _cfg.MetricsEvery == 0 || _step == _cfg.TotalSteps || epoch is not null)
            {
                var m = new Dictionary<string, double>
                {
                    ["step"] = _step,
                    ["tokens_seen"] = _tokens,
                    ["lr"] = lr,
                    ["sparsity_coefficient"] = coefficient,
                    ["l0"] = l0,
                    ["explained_variance"] = ev,
                    ["mse"] = Reconstruction.Mse(batch, result.Reconstruction),
                    ["dead_latents"] = _tracker.DeadCount,
                    ["mean_steps_since_fired"] = _tracker.StepsSinceFired.Average(),
                    ["grad_norm"] = gradNorm,
                    ["tokens_per_second"] = tps,
                };
                if (_resampler is not null)
                {
                    m["resampled_latents"] = _resampledSinceLog;
                    _resampledSinceLog = 0;
                }
                foreach (var (k, v) in result.Losses) m[k] = v;
                if (epoch is not null)
                {
                    var e = epoch.ToDictionary();
                    epochLog!.Write(e);
                    foreach (var (k, v) in e) m[k] = v;
                }
                log.Write(m);
                last = m;
            }
            progress?.Invoke(new TrainProgress(_step, _cfg.TotalSteps, overall, l0, ev, tps, epoch));
            if (_cfg.CheckpointEvery > 0 && _step % _cfg.CheckpointEvery == 0) SaveCheckpoint();
        }
        if (interrupted && _cfg.CheckpointEvery >= 0) SaveCheckpoint();
        // Report the window in progress, or the last complete one when a window has just ended.
        var density = _tracker.WindowTokens > 0 || _lastWindowDensity is null ? _tracker.Log10Density() : _lastWindowDensity;
        return new TrainSummary(_step, _tokens, interrupted, last, density, _tracker.DeadCount, lastEpoch);
    }

    /// <summary>Closes the epoch that the current step ends: training means, then the validation rows under the current weights.</summary>
    private EpochMetrics FinishEpoch()
    {
        double n = Math.Max(1, _epochSteps);
        var (valLoss, valL0, valEv) = _validation is { Rows: > 0 } v ? Validate(v) : (double.NaN, double.NaN, double.NaN);
        var e = new EpochMetrics(_step / _cfg.StepsPerEpoch, _cfg.TotalSteps / _cfg.StepsPerEpoch, _step,
            _epochLoss / n, _epochMse / n, _epochL0 / n, valLoss, valL0, valEv);
        _epochLoss = _epochMse = _epochL0 = 0;
        _epochSteps = 0;
        return e;
    }

    /// <summary>MSE (mean over elements, drrik's val_loss), L0 and explained variance of <paramref name="rows"/>, in batches.</summary>
    private (double Mse, double L0, double ExplainedVariance) Validate(Tensor rows)
    {
        var mean = Initialization.Mean(rows);
        double err = 0, total = 0;
        long active = 0;
        for (int start = 0; start < rows.Rows; start += _cfg.BatchSize)
        {
            var x = rows.RowSlice(start, Math.Min(_cfg.BatchSize, rows.Rows - start));
            var eval = _sae.Evaluate(x);
            for (int e = 0; e < eval.Codes.Count; e++) if (eval.Codes.Value[e] != 0) active++;
            for (int r = 0; r < x.Rows; r++)
            {
                var a = x.Row(r); var b = eval.Reconstruction.Row(r);
                for (int j = 0; j < a.Length; j++)
                {
                    double d = a[j] - b[j], t = a[j] - mean[j];
                    err += d * d;
                    total += t * t;
                }
            }
        }
        double ev = total == 0 ? (err == 0 ? 1 : double.NegativeInfinity) : 1 - err / total;
        return (err / ((double)rows.Rows * rows.Cols), (double)active / rows.Rows, ev);
    }
}
