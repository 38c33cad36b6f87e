using System.Diagnostics;
using System.Globalization;
using SaeSharp.Data;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>
/// Progress of a run, reported after every step; <paramref name="Epoch"/> is set on the step that ends an epoch (fit
/// mode). A sweep reports its means and rows per second with each SAE's own progress under <paramref name="Saes"/>.
/// </summary>
public sealed record TrainProgress(long Step, long TotalSteps, double Loss, double L0, double ExplainedVariance, double TokensPerSecond, EpochMetrics? Epoch = null,
    IReadOnlyDictionary<string, TrainProgress>? Saes = null);

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
    private Tensor? _splitInput, _splitTarget;
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
    /// <summary>The newest training rows (up to <see cref="RecentRowCapacity"/>; a transcoder's with their targets), on which a run's final metrics are measured.</summary>
    public Tensor RecentRows() => _recent.Rows();

    /// <summary>At most this many of the newest training rows are kept for the final metrics (fewer when d_in is wide: 64 MB at most).</summary>
    public int RecentRowCapacity => _recent.Capacity;

    /// <summary>Columns of a training row: d_in, or a transcoder's d_in + d_out (input, then target).</summary>
    public int RowWidth => _sae.Transcoder ? _sae.DIn + _sae.DOut : _sae.DIn;

    /// <param name="epochs">Fit mode (<see cref="FitRunner"/>): the run is settings.epochs × steps per epoch steps, each epoch closed with training means and the validation rows.</param>
    /// <remarks>The trainer's own kernels (clipping, Adam, firing counts) use the SAE's thread budget.</remarks>
    public Trainer(ITrainableSae sae, IActivationSource source, TrainerSettings cfg, string runDir, EpochPlan? epochs = null)
    {
        if (epochs is not null && !cfg.FitMode) throw new ArgumentException("an epoch plan needs epochs > 0 in the settings");
        if (epochs is null && cfg.FitMode) throw new ArgumentException("epochs (fit mode) trains through a FitRunner, which plans the epochs from the data");
        _totalSteps = epochs is null ? cfg.TotalSteps() : checked(cfg.Epochs * epochs.StepsPerEpoch);
        cfg.Validate(_totalSteps);
        _sae = sae;
        if (source.Dim != RowWidth)
            throw new ArgumentException(sae.Transcoder
                ? $"a transcoder trains on rows of its input ({sae.DIn} columns) then its target ({sae.DOut} columns), {RowWidth} in all; the activations have {source.Dim}"
                : $"activations have d_in {source.Dim}, SAE expects {sae.DIn}");
        if (sae.Transcoder && cfg.ResampleInterval > 0)
            throw new ArgumentException("resample_interval: dead-latent resampling re-initialises latents from input rows, which a transcoder does not reconstruct; leave resample_interval at 0 for transcoders");
        if (sae.Transcoder && epochs is not null) throw new ArgumentException("epochs (fit mode) validates reconstructions of the input; a transcoder trains for steps on paired rows");
        var validation = epochs?.Validation;
        if (validation is not null && (validation.Rank != 2 || validation.Cols != sae.DIn))
            throw new ArgumentException($"validation rows must be [n, {sae.DIn}], got [{validation.ShapeString}]");
        if (epochs is not null && epochs.StepsPerEpoch < 1) throw new ArgumentException($"steps per epoch must be at least 1, got {epochs.StepsPerEpoch}");
        _stepsPerEpoch = epochs?.StepsPerEpoch ?? 0;
        _resampleStop = cfg.ResampleStop(_totalSteps);
        _validation = validation;
        _source = source; _cfg = cfg; _runDir = runDir;
        _compute = sae.Compute;
        _recent = new RecentRows(RowWidth);
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
        Restore(latest.Value.Checkpoint, latest.Value.Step);
        return latest.Value.Step;
    }

    /// <summary>Continues from <paramref name="cp"/>, this run's checkpoint of <paramref name="step"/>: weights, optimiser, trackers and the source's position.</summary>
    public void Restore(Checkpoint cp, long step)
    {
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
        var batch = Tensor.Uninitialized(_cfg.BatchSize, RowWidth);
        using var session = Begin();
        while (_step < _totalSteps)
        {
            if (cancel.IsCancellationRequested) return session.End(interrupted: true);
            if (!_source.Next(batch)) return session.End(endedEarly: true);
            var step = session.Step(batch); // not inside progress?.Invoke(...): a null callback would skip the step
            progress?.Invoke(step);
        }
        return session.End();
    }

    /// <summary>
    /// Starts training from the current step with the rows given one batch at a time (<see cref="Session.Step"/>), for
    /// a caller that owns the stream, as a sweep feeding several trainers the same batches; <see cref="Run"/> is this
    /// over the trainer's own source. Opens metrics.jsonl (appending after a resume) until the session is disposed.
    /// </summary>
    public Session Begin() => new(this);

    /// <summary>One training pass over batches handed in by the caller; see <see cref="Begin"/>.</summary>
    public sealed class Session : IDisposable
    {
        private readonly Trainer _t;
        private readonly LrSchedule _schedule;
        private readonly CoefficientWarmup _sparsity;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly long _tokensAtStart;
        private readonly MetricsLog _log;
        private readonly MetricsLog? _epochLog;
        private IReadOnlyDictionary<string, double> _last = new Dictionary<string, double>();
        private EpochMetrics? _lastEpoch;

        internal Session(Trainer t)
        {
            _t = t;
            _schedule = t._cfg.Schedule(t._totalSteps);
            _sparsity = new CoefficientWarmup(t._sae.SparsityPenalty ? t._cfg.L1Coefficient : 0, t._cfg.L1WarmUpSteps);
            _tokensAtStart = t._tokens;
            _log = new MetricsLog(t.MetricsPath, append: t._step > 0);
            _epochLog = t._stepsPerEpoch > 0 ? new MetricsLog(t.EpochsPath, append: t._step > 0) : null;
        }

        /// <summary>Whether the run has made all its steps.</summary>
        public bool Done => _t._step >= _t._totalSteps;

        /// <summary>
        /// One optimiser step on <paramref name="rows"/> [batch_size, <see cref="RowWidth"/>] (a transcoder's input then
        /// target columns): forward and backward, clipping, Adam, firing statistics, metrics and the checkpoint due.
        /// </summary>
        public TrainProgress Step(Tensor rows)
        {
            var t = _t;
            if (t._step >= t._totalSteps) throw new InvalidOperationException($"the run has made its {t._totalSteps} steps");
            rows.EnsureShape("training batch", t._cfg.BatchSize, t.RowWidth);
            if (Ops.HasNonFinite(rows.Span))
                throw new InvalidDataException($"step {t._step + 1}: the activation batch contains NaN or infinite values; training stopped (the last checkpoint is untouched)");
            var (input, target) = t.Split(rows);
            double coefficient = _sparsity.At(t._step);
            var result = t._sae.ForwardBackward(input, target, new StepInputs(coefficient, t._tracker.DeadMask()), t._grads);
            foreach (var (name, value) in result.Losses)
                if (!double.IsFinite(value))
                    throw new InvalidDataException($"step {t._step + 1}: loss '{name}' is {value}; training stopped (the last checkpoint is untouched)");
            t._sae.BeforeOptimizerStep(t._grads);
            double gradNorm = Adam.ClipGradNorm(t._grads.Values, t._cfg.MaxGradNorm, t._compute);
            if (!double.IsFinite(gradNorm))
                throw new InvalidDataException($"step {t._step + 1}: gradient norm is {gradNorm}; training stopped (the last checkpoint is untouched)");
            double lr = _schedule.At(t._step);
            t._adam.Update(t._sae.Parameters, t._grads, (float)lr, t._compute);
            t._sae.AfterOptimizerStep();
            var firingCounts = result.FiringCounts;
            t._tracker.Record(firingCounts, rows.Rows);
            t._resampler?.Record(input, firingCounts);
            t._recent.Add(rows);
            t._step++;
            // No resampling after the stop step, so a re-initialised latent is trained before the run saves it.
            if (t._resampler is not null && t._step % t._cfg.ResampleInterval == 0 && t._step <= t._resampleStop)
                t._resampledSinceLog += t._resampler.Resample(t._sae, t._adam).Count;
            t._tokens += rows.Rows;
            if (t._step % t._cfg.FeatureSamplingWindow == 0)
            {
                t._lastWindowDensity = t._tracker.Log10Density();
                t._tracker.ResetWindow();
            }

            // L0 counts positive activations (SAELens: (feature_acts > 0)), not code entries: top-k keeps zeros after
            // its ReLU, and a jumprelu's sparse codes carry entries its backward needs that did not fire.
            long firing = 0;
            foreach (int c in firingCounts) firing += c;
            double l0 = (double)firing / rows.Rows;
            double ev = Reconstruction.ExplainedVariance(target, result.Reconstruction);
            double tps = (t._tokens - _tokensAtStart) / Math.Max(1e-9, _clock.Elapsed.TotalSeconds);
            double overall = result.Losses.GetValueOrDefault("overall_loss");
            EpochMetrics? epoch = null;
            if (t._stepsPerEpoch > 0)
            {
                t._epochLoss += overall;
                t._epochMse += Reconstruction.Mse(target, result.Reconstruction);
                t._epochL0 += l0;
                t._epochSteps++;
                if (t._step % t._stepsPerEpoch == 0) epoch = _lastEpoch = t.FinishEpoch();
            }
            if (t._step % t._cfg.MetricsEvery == 0 || t._step == t._totalSteps || epoch is not null)
            {
                var m = new Dictionary<string, double>
                {
                    ["step"] = t._step,
                    ["tokens_seen"] = t._tokens,
                    ["lr"] = lr,
                    ["sparsity_coefficient"] = coefficient,
                    ["l0"] = l0,
                    ["explained_variance"] = ev,
                    ["mse"] = Reconstruction.Mse(target, result.Reconstruction),
                    ["dead_latents"] = t._tracker.DeadCount,
                    ["mean_steps_since_fired"] = t._tracker.StepsSinceFired.Average(),
                    ["grad_norm"] = gradNorm,
                    ["tokens_per_second"] = tps,
                };
                if (t._resampler is not null)
                {
                    m["resampled_latents"] = t._resampledSinceLog;
                    t._resampledSinceLog = 0;
                }
                foreach (var (k, v) in result.Losses) m[k] = v;
                if (epoch is not null)
                {
                    var e = epoch.ToDictionary();
                    _epochLog!.Write(e);
                    foreach (var (k, v) in e) m[k] = v;
                }
                _log.Write(m);
                _last = m;
            }
            if (t._cfg.CheckpointEvery > 0 && t._step % t._cfg.CheckpointEvery == 0) t.SaveCheckpoint();
            return new TrainProgress(t._step, t._totalSteps, overall, l0, ev, tps, epoch);
        }

        /// <summary>
        /// Ends the pass: an interrupted one writes a checkpoint; <paramref name="endedEarly"/> says the stream ran out
        /// before the planned steps. Returns what the run reached.
        /// </summary>
        public TrainSummary End(bool interrupted = false, bool endedEarly = false)
        {
            var t = _t;
            if (interrupted && t._cfg.CheckpointEvery >= 0) t.SaveCheckpoint();
            // Report the window in progress, or the last complete one when a window has just ended.
            var density = t._tracker.WindowTokens > 0 || t._lastWindowDensity is null ? t._tracker.Log10Density() : t._lastWindowDensity;
            return new TrainSummary(t._step, t._tokens, interrupted, _last, density, t._tracker.DeadCount, _lastEpoch, t._cfg.DeadFeatureWindow,
                t._tracker.NeverFiredCount, t._totalSteps, endedEarly);
        }

        public void Dispose()
        {
            _log.Dispose();
            _epochLog?.Dispose();
        }
    }

    /// <summary>
    /// The SAE's input and reconstruction target in training rows: the rows themselves for an SAE; for a transcoder the
    /// first d_in columns and the d_out columns after them, copied apart (into the trainer's buffers for a full batch).
    /// </summary>
    public (Tensor Input, Tensor Target) Split(Tensor rows)
    {
        if (!_sae.Transcoder) return (rows, rows);
        bool full = rows.Rows == _cfg.BatchSize;
        var input = full ? _splitInput ??= Tensor.Uninitialized(rows.Rows, _sae.DIn) : Tensor.Uninitialized(rows.Rows, _sae.DIn);
        var target = full ? _splitTarget ??= Tensor.Uninitialized(rows.Rows, _sae.DOut) : Tensor.Uninitialized(rows.Rows, _sae.DOut);
        for (int r = 0; r < rows.Rows; r++)
        {
            var row = rows.Row(r);
            row[.._sae.DIn].CopyTo(input.Row(r));
            row[_sae.DIn..].CopyTo(target.Row(r));
        }
        return (input, target);
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
        var mean = Initialization.Mean(rows, compute: _compute);
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
