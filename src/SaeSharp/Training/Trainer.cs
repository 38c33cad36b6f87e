using System.Diagnostics;
using System.Globalization;
using SaeSharp.Data;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>Progress of a run, reported after every step; <paramref name="Epoch"/> is set on the step that ends an epoch (fit mode).</summary>
public sealed record TrainProgress(long Step, long TotalSteps, double Loss, double L0, double ExplainedVariance, double TokensPerSecond, EpochMetrics? Epoch = null);

/// <summary>
/// What a finished (or interrupted) run reached. <paramref name="DeadLatents"/> counts latents that did not fire in the
/// last <paramref name="DeadWindow"/> steps, <paramref name="NeverFired"/> those that never fired in the whole run;
/// <paramref name="LastEpoch"/> is the last epoch this call completed (fit mode); <paramref name="EndedEarly"/> says the
/// activation source ran out before the planned <paramref name="PlannedSteps"/>.
/// </summary>
public sealed record TrainSummary(long Steps, long TokensSeen, bool Interrupted, IReadOnlyDictionary<string, double> LastMetrics, float[] Log10Density, int DeadLatents,
    EpochMetrics? LastEpoch = null, long DeadWindow = 0, int NeverFired = 0, long PlannedSteps = 0, bool EndedEarly = false);

/// <summary>Fit mode's plan for the trainer: steps per epoch and the held-out rows validated after every epoch (<see cref="FitRunner"/>).</summary>
public sealed record EpochPlan(long StepsPerEpoch, Tensor? Validation);

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
    private readonly TrainerSettings _cfg;
    private readonly long _totalSteps, _stepsPerEpoch, _resampleStop;
    private readonly RecentRows _recent;
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
    /// <summary>One line per finished epoch in fit mode.</summary>
    public string EpochsPath => Path.Combine(_runDir, "epochs.jsonl");
    public FiringTracker Tracker => _tracker;
    /// <summary>The dead-latent resampler, or null when <see cref="TrainerSettings.ResampleInterval"/> is 0.</summary>
    public Resampler? Resampler => _resampler;
    public Adam Optimizer => _adam;
    public long Step => _step;
    /// <summary>The run's length: the settings' step budget, or epochs × steps per epoch in fit mode.</summary>
    public long TotalSteps => _totalSteps;
    /// <summary>The newest training rows (up to <see cref="RecentRowCapacity"/>), on which a run's final metrics are measured.</summary>
    public Tensor RecentRows() => _recent.Rows();

    /// <summary>At most this many of the newest training rows are kept for the final metrics (fewer when d_in is wide: 64 MB at most).</summary>
    public int RecentRowCapacity => _recent.Capacity;

    /// <param name="epochs">Fit mode (<see cref="FitRunner"/>): the run is settings.epochs × steps per epoch steps, each epoch closed with training means and the validation rows.</param>
    /// <remarks>The trainer's own kernels (clipping, Adam, firing counts) use the SAE's thread budget.</remarks>
    public Trainer(ITrainableSae sae, IActivationSource source, TrainerSettings cfg, string runDir, EpochPlan? epochs = null)
    {
        if (epochs is not null && !cfg.FitMode) throw new ArgumentException("an epoch plan needs epochs > 0 in the settings");
        if (epochs is null && cfg.FitMode) throw new ArgumentException("epochs (fit mode) trains through a FitRunner, which plans the epochs from the data");
        _totalSteps = epochs is null ? cfg.TotalSteps() : checked(cfg.Epochs * epochs.StepsPerEpoch);
        cfg.Validate(_totalSteps);
        if (source.Dim != sae.DIn) throw new ArgumentException($"activations have d_in {source.Dim}, SAE expects {sae.DIn}");
        var validation = epochs?.Validation;
        if (validation is not null && (validation.Rank != 2 || validation.Cols != sae.DIn))
            throw new ArgumentException($"validation rows must be [n, {sae.DIn}], got [{validation.ShapeString}]");
        if (epochs is not null && epochs.StepsPerEpoch < 1) throw new ArgumentException($"steps per epoch must be at least 1, got {epochs.StepsPerEpoch}");
        _stepsPerEpoch = epochs?.StepsPerEpoch ?? 0;
        _resampleStop = cfg.ResampleStop(_totalSteps);
        _validation = validation;
        _sae = sae; _source = source; _cfg = cfg; _runDir = runDir;
        _compute = sae.Compute;
        _recent = new RecentRows(sae.DIn);
        _adam = new Adam(sae.Parameters, cfg.AdamBeta1, cfg.AdamBeta2);
        _tracker = new FiringTracker(sae.DSae, cfg.DeadFeatureWindow);
        if (cfg.ResampleInterval > 0)
            _resampler = new Resampler(sae.DIn, sae.DSae, cfg.ResampleWindow, cfg.ResampleSamples, ResamplerSeed(cfg.Seed));
        _grads = sae.Parameters.ToDictionary(kv => kv.Key, kv => new Tensor(kv.Value.Shape.ToArray()), StringComparer.Ordinal);
    }

    /// <summary>The resampler's RNG seed: derived from the run seed, independent of every other stream.</summary>
    public static ulong ResamplerSeed(ulong seed) => new Rng(seed ^ 0x5245_5341_4D50_4C45UL).NextUInt64();

    /// <summary>
    /// Restores the newest intact checkpoint in the run folder, if any (damaged ones are passed over and reported
    /// through <paramref name="warn"/>); returns the step it resumes from.
    /// </summary>
    public long ResumeIfPossible(Action<string>? warn = null)
    {
        var latest = Checkpoint.LoadLatest(CheckpointDir, warn);
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
        cp.RequireIntegers("tracker.total_counts").CopyTo(_tracker.TotalCounts, 0);
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
        if (_stepsPerEpoch > 0)
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
        cp.Integers["tracker.total_counts"] = _tracker.TotalCounts;
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
        if (_stepsPerEpoch > 0)
        {
            cp.State["epoch.loss_sum"] = _epochLoss.ToString("R", CultureInfo.InvariantCulture);
            cp.State["epoch.mse_sum"] = _epochMse.ToString("R", CultureInfo.InvariantCulture);
            cp.State["epoch.l0_sum"] = _epochL0.ToString("R", CultureInfo.InvariantCulture);
            cp.State["epoch.steps"] = _epochSteps.ToString(CultureInfo.InvariantCulture);
        }
        cp.Save(CheckpointDir, _step);
    }

    /// <summary>Trains until <see cref="TotalSteps"/>, the source ends, or cancellation.</summary>
    public TrainSummary Run(CancellationToken cancel = default, Action<TrainProgress>? progress = null)
    {
        var batch = Tensor.Uninitialized(_cfg.BatchSize, _sae.DIn);
        var schedule = _cfg.Schedule(_totalSteps);
        var sparsity = new CoefficientWarmup(_sae.SparsityPenalty ? _cfg.L1Coefficient : 0, _cfg.L1WarmUpSteps);
        IReadOnlyDictionary<string, double> last = new Dictionary<string, double>();
        bool interrupted = false;
        var clock = Stopwatch.StartNew();
        long tokensAtStart = _tokens;
        using var log = new MetricsLog(MetricsPath, append: _step > 0);
        using var epochLog = _stepsPerEpoch > 0 ? new MetricsLog(EpochsPath, append: _step > 0) : null;
        EpochMetrics? lastEpoch = null;
        bool endedEarly = false;
        while (_step < _totalSteps)
        {
            if (cancel.IsCancellationRequested) { interrupted = true; break; }
            if (!_source.Next(batch)) { endedEarly = true; break; }
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
            _recent.Add(batch);
            _step++;
            // No resampling after the stop step, so a re-initialised latent is trained before the run saves it.
            if (_resampler is not null && _step % _cfg.ResampleInterval == 0 && _step <= _resampleStop)
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
            if (_stepsPerEpoch > 0)
            {
                _epochLoss += overall;
                _epochMse += Reconstruction.Mse(batch, result.Reconstruction);
                _epochL0 += l0;
                _epochSteps++;
                if (_step % _stepsPerEpoch == 0) epoch = lastEpoch = FinishEpoch();
            }
            if (_step % _cfg.MetricsEvery == 0 || _step == _totalSteps || epoch is not null)
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
            progress?.Invoke(new TrainProgress(_step, _totalSteps, overall, l0, ev, tps, epoch));
            if (_cfg.CheckpointEvery > 0 && _step % _cfg.CheckpointEvery == 0) SaveCheckpoint();
        }
        if (interrupted && _cfg.CheckpointEvery >= 0) SaveCheckpoint();
        // Report the window in progress, or the last complete one when a window has just ended.
        var density = _tracker.WindowTokens > 0 || _lastWindowDensity is null ? _tracker.Log10Density() : _lastWindowDensity;
        return new TrainSummary(_step, _tokens, interrupted, last, density, _tracker.DeadCount, lastEpoch, _cfg.DeadFeatureWindow,
            _tracker.NeverFiredCount, _totalSteps, endedEarly);
    }

    /// <summary>Closes the epoch that the current step ends: training means, then the validation rows under the current weights.</summary>
    private EpochMetrics FinishEpoch()
    {
        double n = Math.Max(1, _epochSteps);
        var (valLoss, valL0, valEv) = _validation is { Rows: > 0 } v ? Validate(v) : (double.NaN, double.NaN, double.NaN);
        var e = new EpochMetrics(_step / _stepsPerEpoch, _totalSteps / _stepsPerEpoch, _step,
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
