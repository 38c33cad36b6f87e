using System.Globalization;
using System.Text;
using SaeSharp.Analysis;

namespace SaeSharp.Reports;

/// <summary>
/// The HTML report of an analysis (report.html, one self-contained page): the SAE summary with its metrics and the
/// analysis settings, the feature-density histogram, a sortable table of every latent, and a dashboard per selected
/// latent in SAEDashboard's layout: activation and logit-effect histograms, the top and bottom logit tables, the top
/// activating examples with every context token coloured by the latent's activation (hover shows the value) and the
/// quantile groups. It renders the feature store's contents and computes nothing.
/// </summary>
public static class FeatureReport
{
    private static string F(double v, string f = "G4") => double.IsFinite(v) ? v.ToString(f, CultureInfo.InvariantCulture) : "—";
    private static string E(string s) => HtmlReport.Encode(s);

    public static HtmlReport Build(IFeatureSource source, IReadOnlyList<int> dashboards)
    {
        var s = source.Summary;
        var rows = source.Rows;
        var report = new HtmlReport($"SaeSharp feature analysis: {s.SaeName}");
        report.Style(DashboardCss);
        report.Script(SortScript);
        report.Heading("SAE");
        report.Table(["", ""], new List<string[]>
        {
            new[] { "SAE", s.SaePath.Length > 0 ? s.SaePath : s.SaeName },
            new[] { "architecture", s.Architecture },
            new[] { "d_in × d_sae", $"{s.DIn} × {s.DSae}" },
            new[] { "hook", s.HookName },
            new[] { "model", s.ModelPath ?? "—" },
            new[] { "data", s.DatasetPath ?? "—" },
            new[] { "input", s.Input == "tokens" ? $"{s.Sequences:N0} contexts, {s.Positions:N0} analysed tokens" : $"{s.Positions:N0} documents (one activation each)" },
            new[] { "logit tables", s.LogitNote },
        });
        report.Heading("Metrics", 3);
        report.Table(["metric", "value"], s.Metrics.Select(kv => new[] { kv.Key, F(kv.Value) }));
        report.Raw("<details><summary>Settings</summary>" + KeyValueTable(s.Settings.Select(kv => (kv.Key, kv.Value?.ToJsonString() ?? "null"))) + "</details>");

        report.Heading("Feature density");
        report.Figure(Figures.FeatureDensity(rows.Select(r => r.Density).ToArray()));
        report.Figure(Figures.TopFeatures(rows, 10, "density"));
        report.Figure(Figures.TopFeatures(rows, 10, "max_activation"));

        report.Heading("Features");
        report.Paragraph($"Every latent; click a column to sort. Features with a dashboard below link to it.");
        var linked = dashboards.ToHashSet();
        var table = new StringBuilder("<div class=\"scroll\"><table id=\"features\" class=\"sortable\"><thead><tr>");
        foreach (var h in new[] { "feature", "fires", "density", "max activation", "mean activation", "mean when firing", "decoder norm" })
            table.Append("<th>").Append(E(h)).Append("</th>");
        table.Append("</tr></thead><tbody>");
        foreach (var r in rows)
        {
            string name = linked.Contains(r.Feature) ? $"<a href=\"#feature-{r.Feature}\">{r.Feature}</a>" : r.Feature.ToString(CultureInfo.InvariantCulture);
            table.Append($"<tr><td data-v=\"{r.Feature}\">{name}</td><td data-v=\"{r.Fires}\">{r.Fires:N0}</td>");
            foreach (var v in new double[] { r.Density, r.MaxActivation, r.MeanActivation, r.MeanActiveActivation, r.DecoderNorm })
                table.Append($"<td data-v=\"{F(v, "R")}\">{F(v)}</td>");
            table.Append("</tr>");
        }
        report.Raw(table.Append("</tbody></table></div>").ToString());

        report.Heading("Feature dashboards");
        foreach (int j in dashboards) Dashboard(report, source.Detail(j));
        return report;
    }

    public static void Write(string path, IFeatureSource source, IReadOnlyList<int> dashboards) => Build(source, dashboards).Save(path);

    private static void Dashboard(HtmlReport report, FeatureDetail d)
    {
        var st = d.Stats;
        report.Raw($"<section class=\"dashboard\" id=\"feature-{d.Feature}\">");
        report.Heading($"Feature {d.Feature}", 3);
        report.Paragraph($"density {F(st.Density, "0.000%")} ({st.Fires:N0} firings) · max activation {F(st.MaxActivation)} · mean when firing {F(st.MeanActiveActivation)} · decoder norm {F(st.DecoderNorm)}");
        report.Figure(Figures.ActivationHistogram(d));
        if (d.LogitHistogram is not null)
        {
            var logits = new StringBuilder("<div class=\"logits\">");
            logits.Append(LogitTable("Negative logits", d.BottomLogits, "neg")).Append(LogitTable("Positive logits", d.TopLogits, "pos"));
            report.Raw(logits.Append("</div>").ToString());
        }
        double max = st.MaxActivation > 0 ? st.MaxActivation : 1;
        var ex = new StringBuilder($"<h4>Top activations · max {F(st.MaxActivation)}</h4><div class=\"examples\">");
        foreach (var e in d.TopExamples) ex.Append(Example(e, max));
        ex.Append("</div>");
        foreach (var g in d.QuantileGroups.Reverse())
        {
            if (g.Count == 0) continue;
            ex.Append($"<h4>Interval {F(g.Lower, "F3")} – {F(g.Upper, "F3")} · contains {F(g.Fraction, "0.000%")} of tokens ({g.Count:N0} firings)</h4><div class=\"examples\">");
            foreach (var e in g.Examples) ex.Append(Example(e, max));
            ex.Append("</div>");
        }
        report.Raw(ex.ToString());
        report.Raw("</section>");
    }

    /// <summary>A logit table (cls "pos" or "neg" colours its values): each token made visible, with its value.</summary>
    public static string LogitTable(string title, IReadOnlyList<LogitEntry> entries, string cls)
    {
        var sb = new StringBuilder($"<table class=\"logit {cls}\"><tr><th colspan=\"2\">{E(title)}</th></tr>");
        foreach (var e in entries) sb.Append($"<tr><td class=\"tokname\">{E(Visible(e.Token))}</td><td>{F(e.Value, "F3")}</td></tr>");
        return sb.Append("</table>").ToString();
    }

    /// <summary>Whitespace a reader can see: newlines as ↵, tabs as →, an empty token as ∅.</summary>
    public static string Visible(string token) => token.Length == 0 ? "∅" : token.Replace("\n", "↵").Replace("\t", "→").Replace("\r", "");

    /// <summary>One example: each token a span shaded by the latent's activation there (hover: the value), its own token outlined.</summary>
    public static string Example(FeatureExample e, double max)
    {
        var sb = new StringBuilder("<div class=\"ex\">");
        sb.Append($"<span class=\"act\">{F(e.Activation, "F3")}</span>");
        for (int i = 0; i < e.Tokens.Length; i++)
        {
            float a = e.Acts[i];
            double alpha = Math.Clamp(a / max, 0, 1);
            string cls = i == e.Center ? "tok center" : "tok";
            string bg = a > 0 ? $" style=\"background:rgba(255,110,0,{F(0.12 + 0.88 * alpha, "F3")})\"" : "";
            sb.Append($"<span class=\"{cls}\"{bg} title=\"{E(e.Tokens[i])}: {F(a, "F4")}\">{E(Visible(e.Tokens[i]))}</span>");
        }
        if (e.Text is { } text) sb.Append($"<div class=\"doc\">{E(text)}</div>");
        return sb.Append("</div>").ToString();
    }

    private static string KeyValueTable(IEnumerable<(string Key, string Value)> items)
    {
        var sb = new StringBuilder("<table>");
        foreach (var (k, v) in items) sb.Append($"<tr><th>{E(k)}</th><td>{E(v)}</td></tr>");
        return sb.Append("</table>").ToString();
    }

    /// <summary>The styles of dashboards, examples and logit tables (shared with the feature browser).</summary>
    public const string DashboardCss = """
        .scroll{max-height:420px;overflow:auto;display:inline-block;border:1px solid #ddd}
        table.sortable th{cursor:pointer;position:sticky;top:0}
        .dashboard{border-top:2px solid #888;margin-top:2em;padding-top:.5em}
        .logits{display:flex;gap:2em}
        table.logit td.tokname{font-family:'DejaVu Sans Mono',monospace;white-space:pre;text-align:left}
        table.logit.pos td:last-child{color:#1a5fb4} table.logit.neg td:last-child{color:#c01c28}
        .examples{font-family:'DejaVu Sans Mono',monospace;font-size:13px}
        .ex{margin:3px 0;white-space:pre-wrap;line-height:1.7}
        .act{display:inline-block;width:5em;color:#555}
        .tok{border-radius:2px;padding:1px 0} .tok.center{outline:2px solid #000;font-weight:bold}
        .doc{color:#555;font-family:'DejaVu Sans',sans-serif;margin-left:5em}
        """;

    private const string SortScript = """
        document.querySelectorAll('table.sortable').forEach(function (table) {
          table.querySelectorAll('th').forEach(function (th, col) {
            th.addEventListener('click', function () {
              var body = table.tBodies[0], rows = Array.from(body.rows);
              var dir = th.dataset.dir === 'desc' ? 1 : -1;
              th.dataset.dir = dir === 1 ? 'asc' : 'desc';
              rows.sort(function (a, b) { return dir * (parseFloat(a.cells[col].dataset.v) - parseFloat(b.cells[col].dataset.v)); });
              rows.forEach(function (r) { body.appendChild(r); });
            });
          });
        });
        """;
}
