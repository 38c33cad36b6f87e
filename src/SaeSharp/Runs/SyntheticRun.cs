using System.Globalization;
using SaeSharp.Reports;
using SaeSharp.Saes;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Runs;

/// <summary>One trained SAE scored against the synthetic model's true features.</summary>
public sealed record SyntheticRunResult(string Name, SyntheticEvalResult Eval, TimeSpan Elapsed, Sae Sae, string Dir);

/// <summary>
/// Trains SAEs on a synthetic model's activations and scores them against the known features: the built-in
/// benchmark behind `saesharp demo` and `saesharp synth train`. Writes one SAE folder per run and report.html.
/// </summary>
public static class SyntheticRun
{
    /// <param name="mode">New refuses a folder that already holds these runs; Overwrite replaces them (synthetic runs are short and are not resumed; an interrupted one leaves its checkpoint for inspection).</param>
    public static List<SyntheticRunResult> Execute(SyntheticModel model, IReadOnlyList<(string Name, TrainSettings Settings)> runs, string outDir,
        Compute compute, RunFolderMode mode, IRunReporter o, CancellationToken cancel, int evalSamples = 8192)
    {
        if (mode == RunFolderMode.Resume) throw new ArgumentException("synthetic benchmark runs cannot be resumed; rerun them with --overwrite");
        if (mode == RunFolderMode.New && runs.Any(r => TrainRun.HoldsRun(Path.Combine(outDir, r.Name))))
            throw new InvalidOperationException($"{outDir} already holds these synthetic-benchmark runs; give --overwrite to run them afresh (or choose another --out)");
        Directory.CreateDirectory(outDir);
        model.Save(Path.Combine(outDir, "synthetic_model"));
        var (evalFeatures, evalHidden) = EvaluationSamples(model, compute, evalSamples);
        var results = new List<SyntheticRunResult>();
        foreach (var (name, settings) in runs)
        {
            var data = new TrainData(new SyntheticActivationSource(model, settings.Seed + 1, compute),
                new System.Text.Json.Nodes.JsonObject { ["kind"] = "synthetic", ["features"] = model.Config.NumFeatures, ["hidden_dim"] = model.Config.HiddenDim, ["seed"] = model.Config.Seed },
                new System.Text.Json.Nodes.JsonObject { ["dataset_path"] = "synthetic:" + model.Config.NumFeatures });
            string dir = Path.Combine(outDir, name);
            var run = o.Track(name, Math.Max(1, settings.TotalSteps() / 5), report =>
                TrainRun.Execute(settings, data, dir, compute, mode, o, cancel, report));
            if (run.Summary.Interrupted)
                throw new OperationCanceledException($"{name} stopped at step {run.Summary.Steps} of {settings.TotalSteps()}; its checkpoint is in "
                    + $"{Path.Combine(dir, "checkpoints")}" + (results.Count > 0 ? $"; {string.Join(", ", results.Select(r => r.Name))} finished and saved in {outDir}" : ""));
            var forward = run.Sae.Forward(evalHidden);
            var eval = SyntheticEvals.Evaluate(evalFeatures, evalHidden, forward.DenseFeatures(), forward.Output, run.Sae.WDec, model.Dictionary, compute: compute);
            results.Add(new SyntheticRunResult(name, eval, run.Elapsed, run.Sae, dir));
        }
        PrintTable(o, results);
        WriteReport(Path.Combine(outDir, "report.html"), model, results, runs, compute);
        o.WriteLine($"report: {Path.GetFullPath(Path.Combine(outDir, "report.html"))}");
        return results;
    }

    /// <summary>The fresh samples every SAE of a run is scored on (a seed of their own, so training never sees them).</summary>
    public static (Tensor Features, Tensor Hidden) EvaluationSamples(SyntheticModel model, Compute compute, int samples = 8192) =>
        model.Sample(samples, new Rng(model.Config.Seed ^ 0xE7A1UL), compute: compute);

    private static readonly string[] Header = { "SAE", "MCC", "uniqueness", "F1", "L0 true", "L0 SAE", "dead", "shrinkage", "EV", "time (s)" };

    private static string[] Row(SyntheticRunResult r)
    {
        var e = r.Eval;
        string F(double v, string f) => v.ToString(f, CultureInfo.InvariantCulture);
        return new[] { r.Name, F(e.Mcc, "F4"), F(e.FeatureUniqueness, "F4"), F(e.Firing.MeanF1, "F4"), F(e.TrueL0, "F2"), F(e.SaeL0, "F2"),
            e.DeadLatents.ToString(CultureInfo.InvariantCulture), F(e.Shrinkage, "F4"), F(e.ExplainedVariance, "F4"), F(r.Elapsed.TotalSeconds, "F1") };
    }

    public static void PrintTable(IRunReporter o, IReadOnlyList<SyntheticRunResult> results)
    {
        var rows = results.Select(Row).ToList();
        var widths = Header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        string Line(IReadOnlyList<string> cells) => string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i])));
        o.WriteLine(Line(Header));
        o.WriteLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (var r in rows) o.WriteLine(Line(r));
    }

    private static void WriteReport(string path, SyntheticModel model, IReadOnlyList<SyntheticRunResult> results, IReadOnlyList<(string Name, TrainSettings Settings)> runs, Compute compute)
    {
        var report = new HtmlReport("SaeSharp synthetic benchmark");
        var c = model.Config;
        report.Paragraph($"{c.NumFeatures} true features in {c.HiddenDim} dimensions; hierarchy: {model.Hierarchy.Count} trees; correlation: {c.Correlation?.Kind ?? "none"}; seed {c.Seed}.");
        report.Table(Header, results.Select(Row));
        // Which settings each SAE ran with: every training setting, one column per run.
        var settings = runs.Select(r => IO.ConfigBinder.ToJson(r.Settings)).ToList();
        report.Heading("Settings").Table(["setting", .. runs.Select(r => r.Name)],
            settings[0].Select(kv => (IReadOnlyList<string>)[kv.Key, .. settings.Select(j => j[kv.Key]?.ToJsonString().Trim('"') ?? "null")]));
        var truth = model.Dictionary.FeatureVectors;
        foreach (var r in results)
        {
            report.Heading(r.Name);
            var order = SyntheticEvals.BestLatentOrdering(r.Sae.WDec, truth, compute: compute);
            report.Figure(Figures.Heatmap(Ordered(SyntheticEvals.AbsCosine(r.Sae.WDec, truth, compute: compute), order), $"{r.Name}_decoder_cosines",
                $"{r.Name}: |cos| decoder rows vs true features", "true feature", "SAE latent (matched order)"));
            var encoderRows = Ops.Transpose(r.Sae.WEnc, compute: compute);
            report.Figure(Figures.Heatmap(Ordered(SyntheticEvals.AbsCosine(encoderRows, truth, compute: compute), order), $"{r.Name}_encoder_cosines",
                $"{r.Name}: |cos| encoder columns vs true features", "true feature", "SAE latent (matched order)"));
            var metrics = MetricsLog.Read(Path.Combine(r.Dir, "metrics.jsonl"));
            if (metrics.Lines > 0) report.Figure(Figures.TrainingCurves(metrics, $"{r.Name}_training_curves"));
        }
        report.Save(path);
    }

    private static Tensor Ordered(Tensor m, int[] rowOrder)
    {
        var o = Tensor.Uninitialized(rowOrder.Length, m.Cols);
        for (int i = 0; i < rowOrder.Length; i++) m.Row(rowOrder[i]).CopyTo(o.Row(i));
        return o;
    }
}
