using System.Globalization;
using System.Net;
using System.Text;
using SaeSharp.IO;

namespace SaeSharp.Reports;

/// <summary>One top activation of a latent: the text before its token, the token, the text after, and the activation.</summary>
public sealed record MatchExample(string Before, string Token, string After, double Activation);

/// <summary>A reference latent's partner at one checkpoint: its latent (−1: none), distance, decoder cosine and top activations.</summary>
public sealed record MatchedFeatureStep(string Checkpoint, int Partner, double Distance, double DecoderCosine, IReadOnlyList<MatchExample> Examples);

/// <summary>A reference latent followed through the checkpoints (e.g. one that appears at <see cref="Note"/>).</summary>
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
    /// <summary>Figures as (file name without extension, relative to the report; caption).</summary>
    public required IReadOnlyList<(string File, string Caption)> Figures { get; init; }
    public IReadOnlyList<MatchedFeatureView> Features { get; init; } = [];
    public string? FeaturesHeading { get; init; }
}

/// <summary>
/// match_report.html: a self-contained page (no scripts, no external assets beyond the figures beside it) with the
/// summary, the per-checkpoint table, every figure (PNG, linked to its SVG), and chosen features followed through the
/// checkpoints with their partners' distances, decoder cosines and top activating tokens side by side.
/// </summary>
public static class MatchReport
{
    public const string FileName = "match_report.html";

    public static void Write(string path, MatchReportData d)
    {
        var h = new StringBuilder();
        h.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").Append(E(d.Title)).Append("</title><style>")
         .Append("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}")
         .Append("td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}th{background:#f3f3f3}")
         .Append("td.l,th.l{text-align:left}figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:13px;color:#444;max-width:900px}")
         .Append(".ex{font-family:monospace;font-size:12px;white-space:pre-wrap;text-align:left;max-width:320px}.ex b{background:#fd7}")
         .Append(".feat{overflow-x:auto}.muted{color:#888}</style></head><body>");
        h.Append("<h1>").Append(E(d.Title)).Append("</h1>");
        foreach (var line in d.Summary) h.Append("<p>").Append(E(line)).Append("</p>");
        h.Append("<table><tr>");
        for (int i = 0; i < d.TableHeader.Count; i++) h.Append(i == 0 ? "<th class=\"l\">" : "<th>").Append(E(d.TableHeader[i])).Append("</th>");
        h.Append("</tr>");
        foreach (var row in d.TableRows)
        {
            h.Append("<tr>");
            for (int i = 0; i < row.Count; i++) h.Append(i == 0 ? "<td class=\"l\">" : "<td>").Append(E(row[i])).Append("</td>");
            h.Append("</tr>");
        }
        h.Append("</table>");
        foreach (var (file, caption) in d.Figures)
            h.Append("<figure><a href=\"").Append(E(file)).Append(".svg\"><img src=\"").Append(E(file)).Append(".png\" width=\"")
             .Append(MatchFigures.Width).Append("\" alt=\"").Append(E(caption)).Append("\"></a><figcaption>").Append(E(caption)).Append("</figcaption></figure>");
        if (d.Features.Count > 0)
        {
            h.Append("<h2>").Append(E(d.FeaturesHeading ?? "Features through the checkpoints")).Append("</h2>");
            foreach (var f in d.Features) Feature(h, f);
        }
        h.Append("</body></html>");
        AtomicFile.WriteAllText(path, h.ToString());
    }

    private static void Feature(StringBuilder h, MatchedFeatureView f)
    {
        h.Append("<h3>reference latent ").Append(f.Latent).Append(" <span class=\"muted\">").Append(E(f.Note)).Append("</span></h3><div class=\"feat\"><table><tr><th class=\"l\"></th>");
        foreach (var s in f.Steps) h.Append("<th>").Append(E(s.Checkpoint)).Append("</th>");
        h.Append("</tr><tr><td class=\"l\">latent</td>");
        foreach (var s in f.Steps) h.Append("<td>").Append(s.Partner < 0 ? "—" : s.Partner.ToString(CultureInfo.InvariantCulture)).Append("</td>");
        h.Append("</tr><tr><td class=\"l\">distance</td>");
        foreach (var s in f.Steps) h.Append("<td>").Append(Num(s.Distance)).Append("</td>");
        h.Append("</tr><tr><td class=\"l\">decoder cosine</td>");
        foreach (var s in f.Steps) h.Append("<td>").Append(Num(s.DecoderCosine)).Append("</td>");
        h.Append("</tr><tr><td class=\"l\">top activations</td>");
        foreach (var s in f.Steps)
        {
            h.Append("<td class=\"ex\">");
            foreach (var e in s.Examples)
                h.Append(E(e.Before)).Append("<b>").Append(E(e.Token)).Append("</b>").Append(E(e.After))
                 .Append(" <span class=\"muted\">(").Append(e.Activation.ToString("0.00", CultureInfo.InvariantCulture)).Append(")</span><br>");
            h.Append("</td>");
        }
        h.Append("</tr></table></div>");
    }

    private static string Num(double v) => double.IsFinite(v) ? v.ToString("0.000", CultureInfo.InvariantCulture) : "—";

    private static string E(string s) => WebUtility.HtmlEncode(s);
}
