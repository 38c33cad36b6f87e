using System.Globalization;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.IO;
using SaeSharp.Reports;
using SaeSharp.Saes;
using SaeSharp.Training;

namespace SaeSharp.Runs;

/// <summary>
/// Settings of `saesharp report` and of the report `saesharp analyze` writes (a settings group of
/// <see cref="AnalyzeSettings"/>): which latents get a dashboard, and whether drrik's save_all figures are written.
/// </summary>
public sealed record ReportSettings
{
    /// <summary>Latents with a dashboard in report.html (and in the figures) when <see cref="Dashboards"/> names none.</summary>
    public int ReportFeatures { get; set; } = 10;
    /// <summary>The statistic that picks them: density, max_activation or mean_activation (largest first).</summary>
    public string ReportFeaturesBy { get; set; } = "density";
    /// <summary>Comma-separated latent indices to show instead (e.g. "3,17,42").</summary>
    public string? Dashboards { get; set; }
    /// <summary>Write drrik's save_all figures (PNG and SVG) into figures/.</summary>
    public bool Figures { get; set; } = true;

    public void Validate()
    {
        if (ReportFeatures < 0) throw new ArgumentException($"report_features must be non-negative, got {ReportFeatures}");
        if (ReportFeaturesBy is not ("density" or "max_activation" or "mean_activation"))
            throw new ArgumentException($"report_features_by: expected density, max_activation or mean_activation, got '{ReportFeaturesBy}'");
        DashboardIds(int.MaxValue);
    }

    /// <summary>The latents named by <see cref="Dashboards"/>, each checked against <paramref name="dSae"/>; null when none are named.</summary>
    public int[]? DashboardIds(int dSae) => LatentList(Dashboards, dSae, "dashboards");

    /// <summary>The distinct latent indices of a comma-separated setting <paramref name="key"/>, each below <paramref name="dSae"/>; null when it names none.</summary>
    public static int[]? LatentList(string? list, int dSae, string key)
    {
        if (string.IsNullOrWhiteSpace(list)) return null;
        return list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(t =>
            int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int j) && j < dSae ? j
                : throw new ArgumentException($"{key}: '{t}' is not a latent index below d_sae {dSae}")).Distinct().ToArray();
    }
}

/// <summary>The files <see cref="ReportRun"/> wrote.</summary>
public sealed record ReportRunResult(string ReportPath, IReadOnlyList<string> Figures, IReadOnlyList<int> Dashboards);

/// <summary>
/// `saesharp report`: the report.html of an analysis from its feature store (with drrik's save_all figures as PNG and
/// SVG in figures/), or of a training run from its folder (training curves). Reports read results; nothing is recomputed.
/// </summary>
public static class ReportRun
{
    public const string ReportFile = "report.html";
    public const string FiguresFolder = "figures";

    /// <summary>The report of the feature store at <paramref name="storePath"/>, written into <paramref name="outDir"/>.</summary>
    /// <param name="metricsPath">A training run's metrics.jsonl for the training-curves figure (optional).</param>
    public static ReportRunResult FromStore(ReportSettings s, string storePath, string outDir, string? metricsPath, IRunReporter reporter)
    {
        s.Validate();
        using var store = FeatureStore.Open(storePath);
        return Write(s, store, outDir, metricsPath, reporter);
    }

    /// <summary>Writes report.html and (when asked) the figures of <paramref name="source"/> into <paramref name="outDir"/>.</summary>
    public static ReportRunResult Write(ReportSettings s, IFeatureSource source, string outDir, string? metricsPath, IRunReporter reporter)
    {
        Directory.CreateDirectory(outDir);
        var visualizer = new FeatureVisualizer(source, Path.Combine(outDir, FiguresFolder), metricsPath);
        var dashboards = s.DashboardIds(source.Summary.DSae) ?? visualizer.TopBy(s.ReportFeaturesBy, s.ReportFeatures);
        string report = Path.Combine(outDir, ReportFile);
        FeatureReport.Write(report, source, dashboards);
        var figures = new List<string>();
        if (s.Figures)
        {
            foreach (var f in visualizer.SaveAll(dashboards.Count)) figures.Add(Path.Combine(visualizer.OutputDir, f.Name));
            foreach (int j in dashboards.Except(visualizer.TopBy("density", dashboards.Count)))
                figures.Add(Path.Combine(visualizer.OutputDir, visualizer.CreateFeatureDashboard(j).Name));
        }
        reporter.WriteLine($"report: {Path.GetFullPath(report)} ({dashboards.Count} dashboards{(s.Figures ? $", {figures.Count} figures as PNG and SVG in {visualizer.OutputDir}" : "")})");
        return new ReportRunResult(report, figures, dashboards);
    }

    /// <summary>The report.html of the training run in <paramref name="runDir"/> (and its training curves as PNG and SVG).</summary>
    public static ReportRunResult FromTrainingRun(string runDir, IRunReporter reporter)
    {
        var settings = TrainRun.LoadSettings(runDir);
        var cfgPath = Path.Combine(runDir, SaeFiles.ConfigFile);
        JsonObject? metadata = File.Exists(cfgPath) ? SaeFiles.ConfigFromJson(File.ReadAllText(cfgPath), cfgPath).Metadata : null;
        string report = TrainingReport.Write(runDir, ConfigBinder.ToJson(settings), metadata);
        var figures = new List<string>();
        var metrics = MetricsLog.Read(Path.Combine(runDir, "metrics.jsonl"));
        if (metrics.Lines > 0 && metrics.Has("step"))
        {
            var f = Figures.TrainingCurves(metrics);
            f.Save(runDir);
            figures.Add(Path.Combine(runDir, f.Name));
        }
        reporter.WriteLine($"report: {Path.GetFullPath(report)}");
        return new ReportRunResult(report, figures, []);
    }
}
