using System.Globalization;
using System.Text;
using SaeSharp.Analysis;

namespace SaeSharp.Reports;

/// <summary>
/// A reference latent's partner at one checkpoint: its latent (−1: none), distance, decoder cosine, and the analysis of
/// that latent over the matching tokens with the checkpoint's own model (null without one).
/// </summary>
public sealed record MatchedFeatureStep(string Checkpoint, int Partner, double Distance, double DecoderCosine, FeatureDetail? Detail);

/// <summary>A reference latent followed through the checkpoints (e.g. one that appears at some checkpoint, said by <see cref="Note"/>).</summary>
public sealed record MatchedFeatureView(int Latent, string Note, IReadOnlyList<MatchedFeatureStep> Steps);

/// <summary>What match_report.html shows; computed by the match run, rendered here.</summary>
public sealed record MatchReportData
{
    public required string Title { get; init; }
    /// <summary>Lines under the title: what was matched, on which tokens, how long it took.</summary>
    public required IReadOnlyList<string> Summary { get; init; }
    /// <summary>The per-checkpoint table: header and rows of formatted cells.</summary>
    public required IReadOnlyList<string> TableHeader { get; init; }
    public required IReadOnlyList<IReadOnlyList<string>> TableRows { get; init; }
    /// <summary>The figures with their captions.</summary>
    public required IReadOnlyList<(Figure Figure, string Caption)> Figures { get; init; }
    public IReadOnlyList<MatchedFeatureView> Features { get; init; } = [];
    public string FeaturesHeading { get; init; } = "Features through the checkpoints";
    /// <summary>Why <see cref="Features"/> has no dashboards, when it has none (e.g. decoder matching has no tokens to analyse).</summary>
    public string? FeaturesNote { get; init; }
    /// <summary>Top activating examples listed under each dashboard.</summary>
    public int TopExamples { get; init; } = 3;
}

/// <summary>
/// match_report.html, one self-contained <see cref="HtmlReport"/>: the summary, the per-checkpoint table, every figure,
/// and the chosen features followed through the checkpoints: each checkpoint's partner with its distance and decoder
/// cosine, and the partners' dashboards (<see cref="Figures.FeatureDashboard"/>) side by side with their top activations.
/// </summary>
public static class MatchReport
{
    public const string FileName = "match_report.html";

    /// <summary>
    /// The dashboard of a followed feature's partner at one checkpoint (null without a partner or its analysis), named
    /// <c>feature_{reference latent}_{checkpoint}</c>.
    /// </summary>
    public static Figure? Dashboard(MatchedFeatureView f, MatchedFeatureStep s) =>
        s.Detail is null ? null : Figures.FeatureDashboard(s.Detail, $"{s.Checkpoint} · latent {s.Partner}", $"feature_{f.Latent}_{s.Checkpoint}", column: true);

    public static HtmlReport Build(MatchReportData d)
    {
        var report = new HtmlReport(d.Title);
        report.Style(FeatureReport.DashboardCss).Style(Css);
        foreach (var line in d.Summary) report.Paragraph(line);
        report.Table(d.TableHeader, d.TableRows);
        report.Heading("Figures");
        foreach (var (figure, caption) in d.Figures) report.Figure(figure, caption);
        report.Heading(d.FeaturesHeading);
        if (d.FeaturesNote is not null) report.Paragraph(d.FeaturesNote);
        foreach (var f in d.Features) Feature(report, f, d.TopExamples);
        return report;
    }

    public static void Write(string path, MatchReportData d) => Build(d).Save(path);

    private static void Feature(HtmlReport report, MatchedFeatureView f, int topExamples)
    {
        report.Raw($"<section class=\"followed\" id=\"reference-{f.Latent}\">");
        report.Heading($"Reference latent {f.Latent}: {f.Note}", 3);
        report.Table(["", .. f.Steps.Select(s => s.Checkpoint)],
        [
            ["latent", .. f.Steps.Select(s => s.Partner < 0 ? "—" : s.Partner.ToString(CultureInfo.InvariantCulture))],
            ["distance", .. f.Steps.Select(s => Num(s.Distance))],
            ["decoder cosine", .. f.Steps.Select(s => Num(s.DecoderCosine))],
        ]);
        report.Raw("<div class=\"side\">");
        foreach (var s in f.Steps)
        {
            report.Raw("<div class=\"step\">");
            if (Dashboard(f, s) is { } dashboard)
            {
                report.Figure(dashboard);
                var top = s.Detail!.TopExamples.Take(topExamples).ToList();
                var ex = new StringBuilder($"<div class=\"examples\"><h4>Top activations of latent {s.Partner} at {HtmlReport.Encode(s.Checkpoint)}</h4>");
                double max = s.Detail.Stats.MaxActivation > 0 ? s.Detail.Stats.MaxActivation : 1;
                foreach (var e in top) ex.Append(FeatureReport.Example(e, max));
                if (top.Count == 0) ex.Append("<p class=\"none\">no activation over the matching tokens</p>");
                report.Raw(ex.Append("</div>").ToString());
            }
            else report.Raw($"<p class=\"none\">{HtmlReport.Encode(s.Checkpoint)}: {(s.Partner < 0 ? "no partner" : $"latent {s.Partner}, not analysed")}</p>");
            report.Raw("</div>");
        }
        report.Raw("</div></section>");
    }

    private static string Num(double v) => double.IsFinite(v) ? v.ToString("0.000", CultureInfo.InvariantCulture) : "—";

    private const string Css = """
        .followed{border-top:2px solid #888;margin-top:2em;padding-top:.5em}
        .side{display:flex;gap:8px;overflow-x:auto;align-items:flex-start}
        .step{flex:0 0 auto;width:576px}
        .step .examples{font-size:12px;margin:0 8px}
        .step .ex{white-space:normal}
        .none{color:#888;width:560px}
        """;
}
