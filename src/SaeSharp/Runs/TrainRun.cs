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
/// What a training run reads: the activation stream, what identifies it (compared on resume, so a run never silently
/// continues on other data), and the SAELens cfg metadata it contributes. <see cref="Array"/> is the whole matrix when
/// the data is an in-memory array (fit mode needs it; step mode reports how many passes its steps make).
/// </summary>
public sealed record TrainData(IActivationSource Source, JsonObject Identity, JsonObject Metadata)
{
    public Tensor? Array { get; init; }

    /// <summary>A paired cache's target hook: a transcoder's hook_name_out when its settings give none.</summary>
    public string? PairedTargetHook { get; init; }

    private readonly HookLayout? _layout;

    /// <summary>Where each hook's columns sit in the source's rows (a model stream over several hooks, a paired cache); one unnamed block by default.</summary>
    public HookLayout Layout
    {
        get => _layout ?? HookLayout.Unnamed(Source.Dim);
        init => _layout = value.Width == Source.Dim ? value
            : throw new ArgumentException($"the hook layout covers {value.Width} columns, the activation source has {Source.Dim}");
    }

    /// <summary>A [n, d_in] matrix in memory (a .npy file or a script's own rows), reshuffled every pass.</summary>
    public static TrainData FromArray(Tensor rows, ulong seed, string? path = null)
    {
        var identity = new JsonObject { ["kind"] = "activations", ["path"] = path is null ? null : Path.GetFullPath(path), ["rows"] = rows.Rows, ["d_in"] = rows.Cols };
        var meta = new JsonObject { ["dataset_path"] = path is null ? "in-memory" : Path.GetFullPath(path) };
        return new TrainData(new InMemoryActivationSource(rows, FitRunner.SourceSeed(seed)), identity, meta) { Array = rows };
    }
}

/// <summary>The outcome of <see cref="TrainRun.Execute"/>; <paramref name="Final"/> is measured on the saved SAE (null for an interrupted run).</summary>
public sealed record TrainRunResult(Sae Sae, TrainSummary Summary, double ScalingFactor, string OutputDir, TimeSpan Elapsed, FinalMetrics? Final);

/// <summary>
/// L0, explained variance and MSE of the SAE a run saved, measured after the last update, resampling and export, on
/// <see cref="Rows"/> rows described by <see cref="On"/> (e.g. "the last 16,384 training rows").
/// </summary>
public sealed record FinalMetrics(double L0, double ExplainedVariance, double Mse, int Rows, string On);

/// <summary>
/// One SAE training run end to end: the run folder's rules (a folder holding a run is continued only with
/// <see cref="RunFolderMode.Resume"/> and the same settings and data, or started afresh with
/// <see cref="RunFolderMode.Overwrite"/>), initialisation (b_dec, normalisation), the trainer with checkpoints, the
/// final inference SAE in SAELens layout (batchtopk kinds exported as jumprelu, the activation scale folded in) with
/// sparsity.safetensors and training metadata in cfg.json, whose final metrics are measured on the saved weights.
/// </summary>
public static class TrainRun
{
    public const string NormalizationFile = "normalization.json";
    /// <summary>The run's settings and data identity, so a resume continues with exactly the same ones.</summary>
    public const string SettingsFile = "train_settings.json";

    /// <summary>Files a run writes into its folder (an overwrite removes exactly these).</summary>
    private static readonly string[] RunFiles =
    [
        SettingsFile, NormalizationFile, "metrics.jsonl", "epochs.jsonl", "report.html", SaeFiles.ConfigFile, SaeFiles.WeightsFile, SaeFiles.SparsityFile,
    ];

    /// <summary>The settings a run folder was started with (train_settings.json).</summary>
    public static TrainSettings LoadSettings(string runDir) => ReadRecord(runDir).Settings;

    private static (TrainSettings Settings, JsonObject Identity) ReadRecord(string runDir)
    {
        string path = Path.Combine(runDir, SettingsFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{runDir} has no {SettingsFile}; is it a SaeSharp run folder?", path);
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
            var settings = root["settings"] as JsonObject ?? throw new InvalidDataException($"{path}: no 'settings' object");
            return (ConfigBinder.FromJson(new TrainSettings(), settings, path), root["data"] as JsonObject ?? []);
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})"); }
        catch (ArgumentException e) { throw new InvalidDataException(e.Message); }
    }

    /// <summary>Whether <paramref name="dir"/> holds (part of) a training run.</summary>
    public static bool HoldsRun(string dir) =>
        Directory.Exists(dir) && (RunFiles.Any(f => File.Exists(Path.Combine(dir, f))) || Directory.Exists(Path.Combine(dir, "checkpoints")));

    /// <summary>
    /// Trains <paramref name="s"/> on <paramref name="data"/> into <paramref name="outDir"/>: epochs over
    /// <see cref="TrainData.Array"/> in fit mode, else steps from the stream. An interrupted run (cancellation)
    /// writes a checkpoint and saves no SAE.
    /// </summary>
    public static TrainRunResult Execute(TrainSettings s, TrainData data, string outDir, Compute compute, RunFolderMode mode = RunFolderMode.New,
        IRunReporter? reporter = null, CancellationToken cancel = default, Action<TrainProgress>? progress = null)
    {
        reporter ??= TextReporter.Silent;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        s.Validate();
        if (s.FitMode && data.Array is null) throw new ArgumentException("epochs (fit mode) trains on an in-memory array: give activations as a .npy matrix, not a cache or a model stream");
        if (data.Source.Dim < 1) throw new ArgumentException("the activation source has no columns");
        var member = new TrainMember(s, outDir, data);
        member.Resuming = PrepareFolder(s, data, outDir, mode, reporter);
        if (s.FitMode) return ExecuteFit(member, data.Array!, compute, reporter, cancel, progress, clock);
        if (data.Array is { } array)
            reporter.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{s.TotalSteps():N0} steps of {s.BatchSize:N0} rows = {s.TotalSteps() * (double)s.BatchSize / array.Rows:0.##} passes over the {array.Rows:N0} rows"));
        return TrainMember.RunLockstep([member], data, compute, reporter, cancel, progress)[0] with { Elapsed = clock.Elapsed };
    }

    private static TrainRunResult ExecuteFit(TrainMember m, Tensor array, Compute compute, IRunReporter reporter, CancellationToken cancel,
        Action<TrainProgress>? progress, System.Diagnostics.Stopwatch clock)
    {
        var s = m.Settings;
        var (train, _) = FitRunner.Split(array, s.HeldOutFraction());
        if (s.NormalizeActivations == "expected_average_only_in")
            m.SetScales(m.Resuming && File.Exists(m.NormalizationPath) ? m.ReadScales() : m.EstimateScales([train]));
        var fitRows = array;
        if (m.ScaleIn != 1)
        {
            fitRows = array.Clone();
            System.Numerics.Tensors.TensorPrimitives.Multiply(fitRows.Span, (float)m.ScaleIn, fitRows.Span);
            (train, _) = FitRunner.Split(fitRows, s.HeldOutFraction());
        }
        m.CreateSae(s.BDecInit != "zeros" && !m.Resuming ? train : null, compute);
        var fit = new FitRunner(m.Trainable, fitRows, s, m.Dir);
        foreach (var w in s.Warnings(fit.Trainer.TotalSteps)) reporter.WriteLine($"warning: {w}");
        long from = fit.ResumeIfPossible(w => reporter.WriteLine($"warning: {w}"));
        if (m.Resuming) reporter.WriteLine(from > 0 ? $"resuming {m.Dir} from step {from}" : $"{m.Dir} has no intact checkpoint; starting again from step 0");
        var summary = fit.Run(cancel, progress);
        if (summary.Interrupted) return new TrainRunResult(m.Sae, summary, m.ScaleIn, m.Dir, clock.Elapsed, null);
        var (rows, on) = fit.ValidationRows.Rows > 0
            ? (fit.ValidationRows.Clone(), $"the {fit.ValidationRows.Rows:N0} validation rows")
            : (fit.Trainer.RecentRows(), $"the last {fit.Trainer.RecentRows().Rows:N0} training rows");
        return m.Finish(summary, rows, on, reporter) with { Elapsed = clock.Elapsed };
    }

    /// <summary>
    /// Applies the run-folder rules and writes the settings record for a new run; returns whether an earlier run is
    /// continued. Refusals name the folder and say what to give instead.
    /// </summary>
    internal static bool PrepareFolder(TrainSettings s, TrainData data, string outDir, RunFolderMode mode, IRunReporter reporter)
    {
        bool holds = HoldsRun(outDir);
        switch (mode)
        {
            case RunFolderMode.New when holds:
                throw new InvalidOperationException($"{outDir} already holds a training run; give --resume to continue it (same settings and data) or --overwrite to start afresh");
            case RunFolderMode.Resume:
                if (!File.Exists(Path.Combine(outDir, SettingsFile)))
                    throw new InvalidOperationException($"{outDir} holds no training run to resume ({SettingsFile} is missing)");
                var (saved, identity) = ReadRecord(outDir);
                var differences = Differences(ConfigBinder.ToJson(saved), ConfigBinder.ToJson(s), "setting")
                    .Concat(Differences(identity, data.Identity, "data")).ToList();
                if (differences.Count > 0)
                    throw new InvalidOperationException($"{outDir}: the resume differs from the run it continues; start afresh with --overwrite or resume unchanged. Differences: {string.Join("; ", differences)}");
                return true;
            case RunFolderMode.Overwrite when holds:
                foreach (var f in RunFiles) File.Delete(Path.Combine(outDir, f));
                if (Directory.Exists(Path.Combine(outDir, "checkpoints"))) Directory.Delete(Path.Combine(outDir, "checkpoints"), recursive: true);
                reporter.WriteLine($"overwriting the run in {outDir}");
                break;
        }
        Directory.CreateDirectory(outDir);
        var record = new JsonObject { ["settings"] = ConfigBinder.ToJson(s), ["data"] = data.Identity.DeepClone() };
        AtomicFile.WriteAllText(Path.Combine(outDir, SettingsFile), record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return false;
    }

    /// <summary>"key: was → now" for every key whose value differs between two flat JSON objects.</summary>
    internal static IEnumerable<string> Differences(JsonObject before, JsonObject now, string what)
    {
        foreach (var key in before.Select(kv => kv.Key).Union(now.Select(kv => kv.Key)).Order(StringComparer.Ordinal))
        {
            string a = before[key]?.ToJsonString() ?? "null", b = now[key]?.ToJsonString() ?? "null";
            if (a != b) yield return $"{what} {key}: {a} → {b}";
        }
    }

    /// <summary>L0 (positive activations per row, as SAELens), explained variance and MSE of <paramref name="sae"/> on <paramref name="rows"/>.</summary>
    public static FinalMetrics Measure(Sae sae, Tensor rows, string on) => Measure(sae, rows, null, on);

    /// <summary>
    /// L0, explained variance and MSE of <paramref name="sae"/> on <paramref name="input"/>, its reconstruction compared
    /// with <paramref name="target"/> (a transcoder's target rows; null: the input itself).
    /// </summary>
    public static FinalMetrics Measure(Sae sae, Tensor input, Tensor? target, string on)
    {
        if (input.Rows == 0) return new FinalMetrics(double.NaN, double.NaN, double.NaN, 0, "no rows (the data ran out)");
        target ??= input;
        long active = 0;
        var recon = new Tensor(input.Rows, sae.DOut);
        const int Chunk = 4096;
        for (int start = 0; start < input.Rows; start += Chunk)
        {
            var x = input.RowSlice(start, Math.Min(Chunk, input.Rows - start));
            var f = sae.Forward(x);
            // The trainer's L0: positive activations, counted the same way as its firing statistics.
            foreach (int n in f.FiringCounts(sae.Compute)) active += n;
            f.Output.Span.CopyTo(recon.RowSlice(start, x.Rows).Span);
        }
        return new FinalMetrics((double)active / input.Rows, Reconstruction.ExplainedVariance(target, recon), Reconstruction.Mse(target, recon), input.Rows, on);
    }

    internal static void WriteMetadata(TrainSettings s, Sae final, TrainSummary summary, double scaleIn, double scaleOut, FinalMetrics finalMetrics, JsonObject metadata)
    {
        var meta = final.Config.Metadata;
        foreach (var (k, v) in metadata) meta[k] = v?.DeepClone();
        meta["trained_with"] = "saesharp";
        meta["training_steps"] = summary.Steps;
        meta["training_tokens"] = summary.TokensSeen;
        if (summary.EndedEarly) meta["ended_early"] = $"the data ran out after {summary.Steps} of {summary.PlannedSteps} steps";
        meta["final_l0"] = Finite(finalMetrics.L0);
        meta["final_explained_variance"] = Finite(finalMetrics.ExplainedVariance);
        meta["final_metrics_on"] = finalMetrics.On;
        meta["dead_latents"] = summary.DeadLatents;
        meta["dead_latents_window_steps"] = summary.DeadWindow;
        meta["never_fired_latents"] = summary.NeverFired;
        meta["activation_scaling_factor"] = scaleIn;
        if (final.Config.IsTranscoder) meta["activation_scaling_factor_out"] = scaleOut;
        if (s.FitMode)
        {
            meta["epochs"] = s.Epochs;
            meta["validation_fraction"] = s.HeldOutFraction();
            if (summary.LastMetrics.TryGetValue("val_loss", out var vl) && double.IsFinite(vl)) meta["final_val_loss"] = vl;
        }
    }

    private static JsonNode? Finite(double v) => double.IsFinite(v) ? v : null;

    /// <summary>One line closing a fit-mode epoch; both MSEs are per-element means, so they compare directly.</summary>
    public static string DescribeEpoch(EpochMetrics e) =>
        string.Create(CultureInfo.InvariantCulture,
            $"epoch {e.Epoch}/{e.Epochs}  train MSE {e.TrainMse:G5}  val MSE {e.ValLoss:G5}  train L0 {e.TrainL0:F2}  val L0 {e.ValL0:F2}  (train loss {e.TrainLoss:G5}: SAELens overall_loss, MSE summed over d_in plus the penalty)");

    public static string Describe(TrainProgress p) =>
        string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F5}  L0 {p.L0:F2}  EV {p.ExplainedVariance:F4}  {p.TokensPerSecond:N0} tok/s");

    /// <summary>The run's closing summary line: final metrics on the saved weights, with the rows and window they refer to.</summary>
    public static string DescribeResult(TrainRunResult r) =>
        string.Create(CultureInfo.InvariantCulture,
            $"trained {r.Summary.Steps:N0} steps ({r.Summary.TokensSeen:N0} rows) in {r.Elapsed.TotalSeconds:F1} s; saved SAE on {r.Final!.On}: L0 {r.Final.L0:F2}, explained variance {r.Final.ExplainedVariance:F4}; " +
            $"dead {r.Summary.DeadLatents} (no firing in the last {r.Summary.DeadWindow:N0} steps), never fired {r.Summary.NeverFired}");
}

/// <summary>What to do with a run folder that already holds a run.</summary>
public enum RunFolderMode
{
    /// <summary>Refuse a folder that already holds a run.</summary>
    New,
    /// <summary>Continue the run in the folder from its latest checkpoint; settings and data must equal the run's.</summary>
    Resume,
    /// <summary>Delete the run's files in the folder and start afresh.</summary>
    Overwrite,
}
