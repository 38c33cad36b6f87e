using System.Globalization;
using System.Text.Json;
using SaeSharp.Reports;
using SaeSharp.Saes;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;
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
    public static List<SyntheticRunResult> Execute(SyntheticModel model, IReadOnlyList<(string Name, TrainSettings Settings)> runs, string outDir,
        IRunReporter o, CancellationToken cancel, int evalSamples = 8192)
    {
        Directory.CreateDirectory(outDir);
        model.Save(Path.Combine(outDir, "synthetic_model"));
        var (evalFeatures, evalHidden) = EvaluationSamples(model, evalSamples);
        var results = new List<SyntheticRunResult>();
        foreach (var (name, settings) in runs)
        {
            var source = new SyntheticActivationSource(model, settings.Seed + 1);
            string dir = Path.Combine(outDir, name);
            var run = o.Track(name, Math.Max(1, settings.TotalSteps() / 5), report =>
                TrainRun.Execute(settings, source, dir, cancel, report, new System.Text.Json.Nodes.JsonObject { ["dataset_path"] = "synthetic:" + model.Config.NumFeatures }));
            if (run.Summary.Interrupted)
                throw new OperationCanceledException($"{name} stopped at step {run.Summary.Steps} of {settings.TotalSteps()}; its checkpoint is in "
                    + $"{Path.Combine(dir, "checkpoints")}" + (results.Count > 0 ? $"; {string.Join(", ", results.Select(r => r.Name))} finished and saved in {outDir}" : ""));
            var forward = run.Sae.Forward(evalHidden);
            var eval = SyntheticEvals.Evaluate(evalFeatures, evalHidden, forward.DenseFeatures(), forward.Output, run.Sae.WDec, model.Dictionary);
            results.Add(new SyntheticRunResult(name, eval, run.Elapsed, run.Sae, dir));
        }
        PrintTable(o, results);
        WriteReport(Path.Combine(outDir, "report.html"), model, results);
        o.WriteLine($"report: {Path.GetFullPath(Path.Combine(outDir, "report.html"))}");
        return results;
    }

    /// <summary>The fresh samples every SAE of a run is scored on (a seed of their own, so training never sees them).</summary>
    public static (Tensor Features, Tensor Hidden) EvaluationSamples(SyntheticModel model, int samples = 8192) =>
        model.Sample(samples, new Rng(model.Config.Seed ^ 0xE7A1UL));

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

    private static void WriteReport(string path, SyntheticModel model, IReadOnlyList<SyntheticRunResult> results)
    {
        var report = new HtmlReport("SaeSharp synthetic benchmark");
        var c = model.Config;
        report.Paragraph($"{c.NumFeatures} true features in {c.HiddenDim} dimensions; hierarchy: {model.Hierarchy.Count} trees; correlation: {c.Correlation?.Kind ?? "none"}.");
        report.Table(Header, results.Select(Row));
        var truth = model.Dictionary.FeatureVectors;
        foreach (var r in results)
        {
            report.Heading(r.Name);
            var order = SyntheticEvals.BestLatentOrdering(r.Sae.WDec, truth);
            report.Figure(Svg.Heatmap(Ordered(SyntheticEvals.AbsCosine(r.Sae.WDec, truth), order), $"{r.Name}: |cos| decoder rows vs true features", "true feature", "SAE latent (matched order)"));
            var encoderRows = Ops.Transpose(r.Sae.WEnc);
            report.Figure(Svg.Heatmap(Ordered(SyntheticEvals.AbsCosine(encoderRows, truth), order), $"{r.Name}: |cos| encoder columns vs true features", "true feature", "SAE latent (matched order)"));
            var (steps, series) = ReadMetrics(Path.Combine(r.Dir, "metrics.jsonl"), "mse_loss", "l0", "explained_variance");
            if (steps.Count > 0)
            {
                report.Figure(Svg.LineChart("mse loss", "step", steps, new Dictionary<string, IReadOnlyList<double>> { ["mse_loss"] = series[0] }, logY: true));
                report.Figure(Svg.LineChart("L0 and explained variance", "step", steps, new Dictionary<string, IReadOnlyList<double>> { ["l0"] = series[1], ["explained variance"] = series[2] }));
            }
        }
        report.Save(path);
    }

    private static Tensor Ordered(Tensor m, int[] rowOrder)
    {
        var o = Tensor.Uninitialized(rowOrder.Length, m.Cols);
        for (int i = 0; i < rowOrder.Length; i++) m.Row(rowOrder[i]).CopyTo(o.Row(i));
        return o;
    }

    /// <summary>Steps and the named columns of a metrics.jsonl file (missing values as NaN).</summary>
    public static (List<double> Steps, List<double>[] Series) ReadMetrics(string path, params string[] names)
    {
        var steps = new List<double>();
        var series = names.Select(_ => new List<double>()).ToArray();
        if (!File.Exists(path)) return (steps, series);
        foreach (var line in File.ReadLines(path))
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            steps.Add(root.GetProperty("step").GetDouble());
            for (int i = 0; i < names.Length; i++)
                series[i].Add(root.TryGetProperty(names[i], out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN);
        }
        return (steps, series);
    }
}
