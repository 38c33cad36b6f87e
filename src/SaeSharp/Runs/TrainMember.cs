using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Runs;

/// <summary>
/// One SAE of a training run or a sweep: its settings and folder, the columns of the stream it reads (its input hooks,
/// then a transcoder's target hook), the activation scales of those columns, and its SAE and trainer. Several members
/// train on one stream in lock step (<see cref="RunLockstep"/>): every batch of the stream is gathered into each
/// member's rows and each trainer makes its step, so every SAE sees exactly the batches it would see alone.
/// </summary>
internal sealed class TrainMember
{
    public TrainMember(TrainSettings settings, string dir, TrainData data, string? name = null)
    {
        Settings = settings;
        Dir = dir;
        Name = name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
        var kind = SaeRegistry.Get(settings.Architecture);
        var layout = data.Layout;
        // A cache names its hooks: the SAE's defaults to the cache's input hook, a transcoder's target to a paired cache's target.
        string? hook = settings.HookName ?? layout.Slots[0].Hook;
        string? hookOut = settings.HookNameOut ?? (kind.Transcoder ? data.PairedTargetHook : null);
        InputSlots = layout.Find(hook, "hook_name");
        if (kind.Transcoder)
        {
            if (hookOut is null)
                throw new ArgumentException($"hook_name_out: {settings.Architecture} predicts the activations of a second hook; give it (--target-hook, e.g. blocks.1.hook_mlp_out)");
            var target = layout.Find(hookOut, "hook_name_out");
            if (target.Length != 1) throw new ArgumentException($"hook_name_out: a transcoder predicts one hook, got '{hookOut}'");
            TargetSlot = target[0];
        }
        DIn = InputSlots.Sum(x => x.Width);
        DOut = TargetSlot?.Width ?? 0;
        Metadata = (JsonObject)data.Metadata.DeepClone();
        if (hook is not null) Metadata["hook_name"] = hook;
        if (TargetSlot is not null)
        {
            Metadata["hook_name_out"] = TargetSlot.Hook;
            Metadata["hook_head_index_out"] = settings.HookHeadIndex;
        }
    }

    public string Name { get; }
    public TrainSettings Settings { get; }
    public string Dir { get; }
    public HookSlot[] InputSlots { get; }
    /// <summary>A transcoder's target columns; null for an SAE.</summary>
    public HookSlot? TargetSlot { get; }
    public int DIn { get; }
    public int DOut { get; }
    /// <summary>SAELens metadata for cfg.json: the data's, with this SAE's hooks.</summary>
    public JsonObject Metadata { get; }
    /// <summary>Whether the folder held this run already (a resume).</summary>
    public bool Resuming { get; set; }
    /// <summary>The activation scale of the input columns (expected_average_only_in; 1 otherwise), and of a transcoder's target.</summary>
    public double ScaleIn { get; private set; } = 1;
    public double ScaleOut { get; private set; } = 1;
    public Sae Sae { get; private set; } = null!;
    public SaeTrainable Trainable { get; private set; } = null!;
    public Trainer Trainer { get; private set; } = null!;
    public string NormalizationPath => Path.Combine(Dir, TrainRun.NormalizationFile);
    public string CheckpointDir => Path.Combine(Dir, "checkpoints");

    /// <summary>This member's rows out of the stream's, scaled for training.</summary>
    public ColumnGather Gather(int streamWidth, bool scaled = true) => new(
        InputSlots.Select(x => (x, scaled ? (float)ScaleIn : 1f))
            .Concat(TargetSlot is null ? [] : [(TargetSlot, scaled ? (float)ScaleOut : 1f)]), streamWidth);

    public void SetScales((double In, double Out) scales) => (ScaleIn, ScaleOut) = scales;

    /// <summary>The scales a run stored when it started, so a resumed run scales exactly as before.</summary>
    public (double In, double Out) ReadScales()
    {
        if (!File.Exists(NormalizationPath))
            throw new InvalidDataException($"{Dir}: {TrainRun.NormalizationFile} is missing, so the activation scale the run trained with is unknown; start afresh with --overwrite");
        var d = JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(NormalizationPath))
                ?? throw new InvalidDataException($"{NormalizationPath}: empty");
        double s = d.TryGetValue("scaling_factor", out var v) ? v : throw new InvalidDataException($"{NormalizationPath}: no 'scaling_factor'");
        return (s, d.TryGetValue("scaling_factor_out", out var o) ? o : s);
    }

    /// <summary>
    /// SAELens's expected_average_only_in factors (√d / mean row norm) of the input columns and of a transcoder's target
    /// columns over <paramref name="sample"/> (rows of this member's unscaled layout), stored in normalization.json.
    /// </summary>
    public (double In, double Out) EstimateScales(IReadOnlyList<Tensor> sample)
    {
        var (inputs, targets) = SplitAll(sample);
        double sIn = Initialization.NormScalingFactor(inputs);
        double sOut = TargetSlot is null ? sIn : Initialization.NormScalingFactor(targets);
        var record = new Dictionary<string, double> { ["scaling_factor"] = sIn };
        if (TargetSlot is not null) record["scaling_factor_out"] = sOut;
        AtomicFile.WriteAllText(NormalizationPath, JsonSerializer.Serialize(record));
        return (sIn, sOut);
    }

    // A member's rows [n, d_in (+ d_out)] apart into its input and target columns.
    private (List<Tensor> Inputs, List<Tensor> Targets) SplitAll(IEnumerable<Tensor> rows)
    {
        var inputs = new List<Tensor>(); var targets = new List<Tensor>();
        foreach (var r in rows)
        {
            var input = Tensor.Uninitialized(r.Rows, DIn);
            var target = TargetSlot is null ? input : Tensor.Uninitialized(r.Rows, DOut);
            for (int i = 0; i < r.Rows; i++)
            {
                r.Row(i)[..DIn].CopyTo(input.Row(i));
                if (TargetSlot is not null) r.Row(i)[DIn..].CopyTo(target.Row(i));
            }
            inputs.Add(input); targets.Add(target);
        }
        return (inputs, targets);
    }

    /// <summary>
    /// The SAE and its trainable wrapper, initialised SAELens-style; b_dec from <paramref name="bDecSample"/> (this
    /// member's training-scale rows; a transcoder's from its target columns) unless b_dec_init is zeros.
    /// </summary>
    public void CreateSae(Tensor? bDecSample, Compute compute)
    {
        var s = Settings;
        var rng = new Rng(s.Seed);
        var sae = SaeRegistry.Create(s.SaeConfig(DIn, DOut), compute);
        Tensor? sample = bDecSample is null ? null : TargetSlot is null ? bDecSample : SplitAll([bDecSample]).Targets[0];
        float[]? bDec = sample is null ? null : s.BDecInit switch
        {
            "mean" => Initialization.Mean(sample, compute: compute),
            "median" => Initialization.CoordinateMedian(sample),
            _ => Initialization.GeometricMedian(sample, compute),
        };
        SaeTrainable.Initialize(sae, rng, s.DecoderInitNorm, bDec);
        if (sae is JumpReluSae && s.UnitNormDecoder) throw new ArgumentException("unit_norm_decoder is only for architectures without a threshold");
        Sae = sae;
        Trainable = new SaeTrainable(sae, s.LossOptions(), s.UnitNormDecoder);
    }

    /// <summary>
    /// Exports and saves the trained SAE: batch top-k kinds as jumprelu, the activation scales folded in, final metrics
    /// measured on the saved weights over <paramref name="rows"/> (this member's training-scale rows), cfg.json metadata.
    /// </summary>
    public TrainRunResult Finish(TrainSummary summary, Tensor rows, string on, IRunReporter reporter)
    {
        var final = Sae.Config.Kind.SavedAs is null ? Sae : ((TopKSae)Sae).ToJumpRelu();
        if (ScaleIn != 1 || ScaleOut != 1) final.FoldActivationScales((float)ScaleIn, (float)ScaleOut);
        var (inputs, targets) = SplitAll([rows]);
        var (input, target) = (inputs[0], targets[0]);
        // The saved SAE works on raw activations; the trainer's rows carry the training scale.
        if (ScaleIn != 1) System.Numerics.Tensors.TensorPrimitives.Divide(input.Span, (float)ScaleIn, input.Span);
        if (TargetSlot is not null && ScaleOut != 1) System.Numerics.Tensors.TensorPrimitives.Divide(target.Span, (float)ScaleOut, target.Span);
        var finalMetrics = TrainRun.Measure(final, input, TargetSlot is null ? null : target, on);
        TrainRun.WriteMetadata(Settings, final, summary, ScaleIn, ScaleOut, finalMetrics, Metadata);
        SaeFiles.Save(final, Dir, summary.Log10Density, SaeLensTrainingKeys.From(Settings));
        Reports.TrainingReport.Write(Dir, IO.ConfigBinder.ToJson(Settings), final.Config.Metadata);
        if (summary.EndedEarly)
            reporter.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Name}: the activation data ran out after {summary.Steps:N0} of {summary.PlannedSteps:N0} steps ({summary.TokensSeen:N0} rows seen)"));
        return new TrainRunResult(final, summary, ScaleIn, Dir, TimeSpan.Zero, finalMetrics);
    }

    /// <summary>
    /// Trains <paramref name="members"/> (their folders prepared) on <paramref name="data"/> in lock step: resumes them
    /// all at the newest step every one has an intact checkpoint of (or starts all afresh), draws the initialisation
    /// samples once from the stream, then hands each batch of the stream to every member. Progress is the single
    /// member's, or for several the sweep's with each member's under <see cref="TrainProgress.Saes"/>.
    /// </summary>
    public static List<TrainRunResult> RunLockstep(IReadOnlyList<TrainMember> members, TrainData data, Compute compute, IRunReporter reporter,
        CancellationToken cancel, Action<TrainProgress>? progress)
    {
        var stream = members[0].Settings;
        int batchSize = stream.BatchSize;
        var (checkpoints, step) = CommonCheckpoints(members, reporter);
        bool fresh = step == 0;
        var shared = new SharedStream(data.Source);

        // Scales and b_dec samples come from the stream before training (none on a resume: the stream is replayed).
        var scaled = members.Where(m => m.Settings.NormalizeActivations == "expected_average_only_in").ToList();
        if (!fresh) foreach (var m in scaled) m.SetScales(m.ReadScales());
        else if (scaled.Count > 0)
        {
            var sample = new List<Tensor>();
            for (int i = 0; i < stream.NormalizationBatches; i++)
            {
                var b = Tensor.Uninitialized(batchSize, data.Source.Dim);
                if (!data.Source.Next(b)) break;
                sample.Add(b);
            }
            if (sample.Count == 0) throw new InvalidDataException("the activation source ended before the normalisation scale could be estimated");
            foreach (var m in scaled) m.SetScales(m.EstimateScales([.. sample.Select(m.Gather(data.Source.Dim, scaled: false).Apply)]));
        }
        Tensor? bDecRows = null;
        if (fresh && members.Any(m => m.Settings.BDecInit != "zeros"))
        {
            bDecRows = Tensor.Uninitialized(Math.Min(batchSize * 4, 16_384), data.Source.Dim);
            if (!data.Source.Next(bDecRows)) throw new InvalidDataException("the activation source ended before b_dec could be initialised");
        }
        foreach (var m in members)
        {
            m.CreateSae(bDecRows is not null && m.Settings.BDecInit != "zeros" ? m.Gather(data.Source.Dim).Apply(bDecRows).Clone() : null, compute);
            m.Trainer = new Trainer(m.Trainable, new MemberSource(shared, m.Gather(data.Source.Dim).Width), m.Settings, m.Dir);
            foreach (var w in m.Settings.Warnings(m.Trainer.TotalSteps)) reporter.WriteLine(members.Count > 1 ? $"warning: {m.Name}: {w}" : $"warning: {w}");
        }
        for (int i = 0; i < members.Count; i++)
        {
            var m = members[i];
            if (checkpoints[i] is { } cp) m.Trainer.Restore(cp, step);
            if (m.Resuming) reporter.WriteLine(step > 0 ? $"resuming {m.Dir} from step {step}" : $"{m.Dir} has no intact checkpoint; starting again from step 0");
        }

        var sessions = new List<Trainer.Session>();
        var summaries = new TrainSummary[members.Count];
        try
        {
            foreach (var m in members) sessions.Add(m.Trainer.Begin());
            var gathers = members.Select(m => m.Gather(data.Source.Dim)).ToArray();
            var rows = gathers.Select(g => g.IsIdentity ? null : Tensor.Uninitialized(batchSize, g.Width)).ToArray();
            var wide = Tensor.Uninitialized(batchSize, data.Source.Dim);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long rowsSeen = 0;
            bool interrupted = false, endedEarly = false;
            while (!sessions[0].Done)
            {
                if (cancel.IsCancellationRequested) { interrupted = true; break; }
                if (!data.Source.Next(wide)) { endedEarly = true; break; }
                var steps = new TrainProgress[members.Count];
                for (int i = 0; i < members.Count; i++)
                {
                    var r = rows[i];
                    if (r is not null) gathers[i].Apply(wide, r);
                    steps[i] = sessions[i].Step(r ?? wide);
                }
                rowsSeen += batchSize;
                if (progress is null) continue;
                if (members.Count == 1) progress(steps[0]);
                else
                {
                    var first = steps[0];
                    progress(new TrainProgress(first.Step, first.TotalSteps, steps.Average(p => p.Loss), steps.Average(p => p.L0), steps.Average(p => p.ExplainedVariance),
                        rowsSeen / Math.Max(1e-9, clock.Elapsed.TotalSeconds), Saes: members.Select((m, i) => (m.Name, steps[i])).ToDictionary(t => t.Name, t => t.Item2)));
                }
            }
            for (int i = 0; i < members.Count; i++) summaries[i] = sessions[i].End(interrupted, endedEarly);
        }
        finally
        {
            foreach (var session in sessions) session.Dispose();
        }

        var results = new List<TrainRunResult>();
        Tensor? following = null;
        for (int i = 0; i < members.Count; i++)
        {
            var m = members[i];
            if (summaries[i].Interrupted) { results.Add(new TrainRunResult(m.Sae, summaries[i], m.ScaleIn, m.Dir, TimeSpan.Zero, null)); continue; }
            var recent = m.Trainer.RecentRows();
            if (recent.Rows > 0) { results.Add(m.Finish(summaries[i], recent, $"the last {recent.Rows:N0} training rows", reporter)); continue; }
            // A run resumed at its end trained on nothing here: measure on the rows that follow its last step.
            following ??= Following(data.Source, members.Max(x => x.Trainer.RecentRowCapacity));
            var next = m.Gather(data.Source.Dim).Apply(following.RowSlice(0, Math.Min(following.Rows, m.Trainer.RecentRowCapacity)));
            results.Add(m.Finish(summaries[i], next.Clone(), $"{next.Rows:N0} rows that follow the last training step", reporter));
        }
        return results;
    }

    /// <summary>
    /// Each member's newest checkpoint at the newest step they all have intact (a kill can leave one member a
    /// checkpoint behind the others); none, and step 0, when any member has none.
    /// </summary>
    private static (Checkpoint?[] Checkpoints, long Step) CommonCheckpoints(IReadOnlyList<TrainMember> members, IRunReporter reporter)
    {
        long bound = long.MaxValue;
        while (true)
        {
            var loaded = members.Select(m => Checkpoint.LoadLatest(m.CheckpointDir, w => reporter.WriteLine($"warning: {w}"), bound)).ToArray();
            if (loaded.Any(l => l is null))
            {
                if (loaded.Any(l => l is not null))
                    reporter.WriteLine($"warning: {string.Join(", ", members.Where((_, i) => loaded[i] is null).Select(m => m.Name))} has no checkpoint the other SAEs share; the sweep starts again from step 0");
                return (new Checkpoint?[members.Count], 0);
            }
            long min = loaded.Min(l => l!.Value.Step);
            if (loaded.All(l => l!.Value.Step == min)) return ([.. loaded.Select(l => (Checkpoint?)l!.Value.Checkpoint)], min);
            bound = min;
        }
    }

    private static Tensor Following(IActivationSource source, int capacity)
    {
        var next = Tensor.Uninitialized(capacity, source.Dim);
        int got = 0;
        var one = Tensor.Uninitialized(1, source.Dim);
        while (got < next.Rows && source.Next(one)) one.Row(0).CopyTo(next.Row(got++));
        return next.RowSlice(0, got).Clone();
    }

    /// <summary>
    /// The stream every member trains on. Each member's checkpoint records the stream's position; on a resume the first
    /// member restores it (the stream replays from its start) and the others must name the same position.
    /// </summary>
    private sealed class SharedStream(IActivationSource source)
    {
        private Dictionary<string, string>? _restored;

        public IReadOnlyDictionary<string, string> Position => source.Position;

        public void Restore(IReadOnlyDictionary<string, string> position)
        {
            if (_restored is null)
            {
                source.Restore(position);
                _restored = new Dictionary<string, string>(position);
                return;
            }
            if (_restored.Count != position.Count || _restored.Any(kv => !position.TryGetValue(kv.Key, out var v) || v != kv.Value))
                throw new InvalidDataException("the checkpoints of the sweep's SAEs record different stream positions at the same step; start the sweep afresh with --overwrite");
        }
    }

    /// <summary>A member trainer's view of the shared stream: its row width, and the stream's position for checkpoints; the sweep hands it its batches.</summary>
    private sealed class MemberSource(SharedStream shared, int dim) : IActivationSource
    {
        public int Dim => dim;
        public bool Next(Tensor batch) => throw new InvalidOperationException("a lock-step member's batches come from its run (Trainer.Session.Step), not from its source");
        public IReadOnlyDictionary<string, string> Position => shared.Position;
        public void Restore(IReadOnlyDictionary<string, string> position) => shared.Restore(position);
    }
}
