using System.Globalization;
using System.Net;
using System.Text;
using SaeSharp.Tensors;

namespace SaeSharp.Reports;

/// <summary>Small self-contained SVG charts (no scripts, no external assets) for HTML reports.</summary>
public static class Svg
{
    private static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>
    /// A heatmap of <paramref name="values"/> [rows, cols] mapped linearly from [min, max] to a white→blue scale.
    /// Large matrices are averaged into at most <paramref name="maxCells"/> cells per side.
    /// </summary>
    public static string Heatmap(Tensor values, string title, string xLabel, string yLabel, double min = 0, double max = 1, int maxCells = 128, int size = 360)
    {
        int rows = values.Rows, cols = values.Cols;
        int gr = Math.Min(rows, maxCells), gc = Math.Min(cols, maxCells);
        var grid = new double[gr, gc];
        var count = new int[gr, gc];
        for (int r = 0; r < rows; r++)
        {
            int i = (int)((long)r * gr / rows);
            var row = values.Row(r);
            for (int c = 0; c < cols; c++)
            {
                int j = (int)((long)c * gc / cols);
                grid[i, j] += row[c];
                count[i, j]++;
            }
        }
        double cw = (double)size / gc, ch = (double)size / gr;
        var sb = new StringBuilder();
        int pad = 40;
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size + pad + 70}\" height=\"{size + pad + 30}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{pad}\" y=\"16\" font-weight=\"bold\">{WebUtility.HtmlEncode(title)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<g transform=\"translate({pad},24)\">");
        for (int i = 0; i < gr; i++)
            for (int j = 0; j < gc; j++)
            {
                double v = count[i, j] == 0 ? min : grid[i, j] / count[i, j];
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(j * cw)}\" y=\"{F(i * ch)}\" width=\"{F(cw + 0.05)}\" height=\"{F(ch + 0.05)}\" fill=\"{Color(v, min, max)}\"/>");
            }
        sb.Append(CultureInfo.InvariantCulture, $"<rect width=\"{size}\" height=\"{size}\" fill=\"none\" stroke=\"#444\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{size / 2}\" y=\"{size + 16}\" text-anchor=\"middle\">{WebUtility.HtmlEncode(xLabel)} ({cols})</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text transform=\"translate(-8,{size / 2}) rotate(-90)\" text-anchor=\"middle\">{WebUtility.HtmlEncode(yLabel)} ({rows})</text>");
        // Colour bar.
        for (int t = 0; t < 50; t++)
        {
            double v = max - (max - min) * t / 49.0;
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{size + 12}\" y=\"{F(t * size / 50.0)}\" width=\"14\" height=\"{F(size / 50.0 + 0.05)}\" fill=\"{Color(v, min, max)}\"/>");
        }
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{size + 30}\" y=\"10\">{F(max)}</text><text x=\"{size + 30}\" y=\"{size}\">{F(min)}</text>");
        sb.Append("</g></svg>");
        return sb.ToString();
    }

    private static string Color(double v, double min, double max)
    {
        double t = max > min ? Math.Clamp((v - min) / (max - min), 0, 1) : 0;
        int r = (int)Math.Round(255 * (1 - 0.85 * t)), g = (int)Math.Round(255 * (1 - 0.6 * t)), b = (int)Math.Round(255 * (1 - 0.15 * t));
        return $"#{r:x2}{g:x2}{b:x2}";
    }

    /// <summary>A line chart of one or more named series over x (e.g. loss against step).</summary>
    public static string LineChart(string title, string xLabel, IReadOnlyList<double> x, IReadOnlyDictionary<string, IReadOnlyList<double>> series, bool logY = false, int width = 480, int height = 260)
    {
        string[] palette = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf" };
        double Tr(double y) => logY ? Math.Log10(Math.Max(y, 1e-12)) : y;
        var finite = series.Values.SelectMany(s => s).Where(double.IsFinite).Select(Tr).ToList();
        double yMin = finite.Count > 0 ? finite.Min() : 0, yMax = finite.Count > 0 ? finite.Max() : 1;
        if (yMax <= yMin) yMax = yMin + 1;
        double xMin = x.Count > 0 ? x.Min() : 0, xMax = x.Count > 0 ? x.Max() : 1;
        if (xMax <= xMin) xMax = xMin + 1;
        int l = 56, t = 24, w = width - l - 110, h = height - t - 34;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{l}\" y=\"16\" font-weight=\"bold\">{WebUtility.HtmlEncode(title)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{l}\" y=\"{t}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#444\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{l - 4}\" y=\"{t + 10}\" text-anchor=\"end\">{F(logY ? Math.Pow(10, yMax) : yMax)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{l - 4}\" y=\"{t + h}\" text-anchor=\"end\">{F(logY ? Math.Pow(10, yMin) : yMin)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{l + w / 2}\" y=\"{t + h + 28}\" text-anchor=\"middle\">{WebUtility.HtmlEncode(xLabel)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{l}\" y=\"{t + h + 14}\">{F(xMin)}</text><text x=\"{l + w}\" y=\"{t + h + 14}\" text-anchor=\"end\">{F(xMax)}</text>");
        int k = 0;
        foreach (var (name, ys) in series)
        {
            var pts = new StringBuilder();
            for (int i = 0; i < Math.Min(x.Count, ys.Count); i++)
            {
                if (!double.IsFinite(ys[i])) continue;
                double px = l + (x[i] - xMin) / (xMax - xMin) * w, py = t + h - (Tr(ys[i]) - yMin) / (yMax - yMin) * h;
                pts.Append(F(px)).Append(',').Append(F(py)).Append(' ');
            }
            string colour = palette[k % palette.Length];
            sb.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{pts}\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{l + w + 8}\" y=\"{t + 12 + 16 * k}\" fill=\"{colour}\">{WebUtility.HtmlEncode(name)}</text>");
            k++;
        }
        sb.Append("</svg>");
        return sb.ToString();
    }
}

/// <summary>Builds a single self-contained HTML page out of headings, tables and SVG figures.</summary>
public sealed class HtmlReport
{
    private readonly StringBuilder _body = new();
    public string Title { get; }

    public HtmlReport(string title) => Title = title;

    public HtmlReport Heading(string text, int level = 2) { _body.Append($"<h{level}>{WebUtility.HtmlEncode(text)}</h{level}>\n"); return this; }
    public HtmlReport Paragraph(string text) { _body.Append($"<p>{WebUtility.HtmlEncode(text)}</p>\n"); return this; }
    public HtmlReport Figure(string svg) { _body.Append("<div class=\"fig\">").Append(svg).Append("</div>\n"); return this; }

    public HtmlReport Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        _body.Append("<table><tr>");
        foreach (var h in header) _body.Append("<th>").Append(WebUtility.HtmlEncode(h)).Append("</th>");
        _body.Append("</tr>");
        foreach (var r in rows)
        {
            _body.Append("<tr>");
            foreach (var c in r) _body.Append("<td>").Append(WebUtility.HtmlEncode(c)).Append("</td>");
            _body.Append("</tr>");
        }
        _body.Append("</table>\n");
        return this;
    }

    public string Render() =>
        $"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{WebUtility.HtmlEncode(Title)}</title>\n" +
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}" +
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}.fig{display:inline-block;margin:8px}</style>\n" +
        $"</head><body><h1>{WebUtility.HtmlEncode(Title)}</h1>\n{_body}</body></html>\n";

    public void Save(string path) => SaeSharp.IO.AtomicFile.WriteAllText(path, Render());
}
