using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace SaeSharp.Reports;

/// <summary>
/// A single self-contained HTML page (opens offline: styles, scripts and figures are inline, nothing is fetched) built
/// from headings, paragraphs, tables and figures (inline SVG).
/// </summary>
public sealed partial class HtmlReport(string title)
{
    private readonly StringBuilder _body = new();
    private readonly StringBuilder _style = new();
    private readonly StringBuilder _script = new();
    private int _figures;
    public string Title { get; } = title;

    public static string Encode(string text) => WebUtility.HtmlEncode(text);

    public HtmlReport Heading(string text, int level = 2, string? id = null)
    {
        string attr = id is null ? "" : $" id=\"{Encode(id)}\"";
        _body.Append($"<h{level}{attr}>{Encode(text)}</h{level}>\n");
        return this;
    }

    public HtmlReport Paragraph(string text) { _body.Append($"<p>{Encode(text)}</p>\n"); return this; }

    /// <summary>A figure as inline SVG, with a caption under it when one is given.</summary>
    public HtmlReport Figure(Figure figure, string? caption = null)
    {
        var svg = figure.Svg();
        int start = svg.IndexOf("<svg", StringComparison.Ordinal); // drop the XML declaration
        _body.Append("<div class=\"fig\">").Append(UniqueIds(start > 0 ? svg[start..] : svg, $"f{++_figures}-"));
        if (caption is not null) _body.Append($"<p class=\"caption\" style=\"max-width:{figure.Width}px\">{Encode(caption)}</p>");
        _body.Append("</div>\n");
        return this;
    }

    /// <summary>
    /// The SVG with every id (Skia names its images img_0, img_1, ... and clip paths cl_N in every file) and every
    /// reference to one prefixed, so that figures inlined in one page do not draw each other's images.
    /// </summary>
    public static string UniqueIds(string svg, string prefix) =>
        IdReference().Replace(svg, m => m.Groups["attr"].Value + prefix + m.Groups["id"].Value);

    [GeneratedRegex("(?<attr>\\bid=\"|href=\"#|url\\(#)(?<id>[^\")]+)")]
    private static partial Regex IdReference();

    public HtmlReport Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        _body.Append("<table><tr>");
        foreach (var h in header) _body.Append("<th>").Append(Encode(h)).Append("</th>");
        _body.Append("</tr>");
        foreach (var r in rows)
        {
            _body.Append("<tr>");
            foreach (var c in r) _body.Append("<td>").Append(Encode(c)).Append("</td>");
            _body.Append("</tr>");
        }
        _body.Append("</table>\n");
        return this;
    }

    /// <summary>Markup the caller has already escaped.</summary>
    public HtmlReport Raw(string html) { _body.Append(html).Append('\n'); return this; }

    public HtmlReport Style(string css) { _style.Append(css).Append('\n'); return this; }
    public HtmlReport Script(string js) { _script.Append(js).Append('\n'); return this; }

    public string Render() =>
        $"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{Encode(Title)}</title>\n" +
        "<style>body{font-family:'DejaVu Sans',sans-serif;margin:2em;max-width:1500px}table{border-collapse:collapse;margin:1em 0}" +
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}.fig{display:inline-block;margin:8px;vertical-align:top}.caption{font-size:13px;color:#444;margin:2px 0 0}\n" +
        _style + "</style>\n" +
        $"</head><body><h1>{Encode(Title)}</h1>\n{_body}" +
        (_script.Length > 0 ? $"<script>\n{_script}</script>\n" : "") + "</body></html>\n";

    public void Save(string path) => SaeSharp.IO.AtomicFile.WriteAllText(path, Render());
}
