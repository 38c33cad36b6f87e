using System.Text.Json.Nodes;
using SaeSharp.Training;

namespace SaeSharp.Reports;

/// <summary>
/// The report.html of a training run: the training curves from its metrics.jsonl (every loss term, L0, explained
/// variance, dead latents, learning rate), the SAE's cfg metadata (final metrics) and the settings it ran with.
/// </summary>
public static class TrainingReport
{
    public const string FileName = "report.html";

    /// <param name="settings">The run's settings by snake_case key.</param>
    /// <param name="metadata">The saved SAE's cfg.json metadata (final L0, explained variance, dead latents, ...).</param>
    public static HtmlReport Build(string title, string metricsPath, JsonObject settings, JsonObject? metadata)
    {
        var report = new HtmlReport(title);
        var m = MetricsLog.Read(metricsPath);
        if (m.Lines > 0 && m.Has("step")) report.Heading("Training curves").Figure(Figures.TrainingCurves(m));
        else report.Paragraph($"{metricsPath} holds no metrics lines.");
        if (metadata is not null)
            report.Heading("Saved SAE").Table(["metadata", "value"], metadata.Select(kv => new[] { kv.Key, Text(kv.Value) }));
        report.Heading("Settings").Table(["setting", "value"], settings.Select(kv => new[] { kv.Key, Text(kv.Value) }));
        return report;
    }

    private static string Text(JsonNode? v) => v is JsonValue jv && jv.TryGetValue(out string? s) ? s : v?.ToJsonString() ?? "null";

    /// <summary>Writes <c>report.html</c> of the run in <paramref name="runDir"/> (its metrics.jsonl, the given settings and metadata).</summary>
    public static string Write(string runDir, JsonObject settings, JsonObject? metadata)
    {
        string path = Path.Combine(runDir, FileName);
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)));
        Build($"SaeSharp training run: {name}", Path.Combine(runDir, "metrics.jsonl"), settings, metadata).Save(path);
        return path;
    }
}
