using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SaeSharp.Reports;

namespace SaeSharp.Server;

/// <summary>
/// The browser's HTML pages, rendered from the same views as the JSON endpoints. Examples and logit tables use the
/// analysis report's markup (<see cref="FeatureReport"/>); scripts and styles come from /assets.
/// </summary>
public static class Pages
{
    private static string E(string? s) => HtmlReport.Encode(s ?? "");
    private static string F(double v, string f = "G4") => double.IsFinite(v) ? v.ToString(f, CultureInfo.InvariantCulture) : "—";
    private static string F(double? v, string f = "G4") => v is double d ? F(d, f) : "—";

    /// <summary>A whole page: the navigation bar, the title and <paramref name="body"/> (already escaped).</summary>
    public static string Layout(ServeCatalog catalog, string title, string body, ServedStore? current = null)
    {
        var nav = new StringBuilder("<nav><a class=\"brand\" href=\"/\">SaeSharp</a>");
        if (current is not null)
        {
            string b = $"/stores/{current.Id}";
            nav.Append($"<span class=\"sep\">›</span><a href=\"{b}\">{E(current.Name)}</a>")
               .Append($"<a href=\"{b}/features\">Features</a><a href=\"{b}/search\">Text search</a><a href=\"{b}/steer\">Steering</a>");
            foreach (var m in catalog.MatchesFrom(current)) nav.Append($"<a href=\"/matches/{m.Id}\">Matching: {E(m.Name)}</a>");
        }
        nav.Append("</nav>");
        return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">" +
               $"<title>{E(title)} · SaeSharp</title><link rel=\"icon\" href=\"data:,\">" +
               "<link rel=\"stylesheet\" href=\"/assets/style.css\"><link rel=\"stylesheet\" href=\"/assets/dashboard.css\">" +
               "<script src=\"/assets/app.js\" defer></script></head>\n<body>" + nav + $"<main><h1>{E(title)}</h1>\n{body}</main></body></html>\n";
    }

    public static string Error(ServeCatalog catalog, int status, string message) =>
        Layout(catalog, status == 404 ? "Not found" : "Bad request", $"<p class=\"error\" id=\"error\">{E(message)}</p><p><a href=\"/\">Back to the overview</a></p>");

    private static string KeyValues(IEnumerable<(string Key, string Value)> items, string? id = null)
    {
        var sb = new StringBuilder(id is null ? "<table class=\"kv\">" : $"<table class=\"kv\" id=\"{id}\">");
        foreach (var (k, v) in items) sb.Append($"<tr><th>{E(k)}</th><td>{E(v)}</td></tr>");
        return sb.Append("</table>").ToString();
    }

    private static readonly string[] HeadlineMetrics = ["l0", "explained_variance", "mse", "dead_latents", "frac_alive"];
    private static readonly (string Group, string Metric)[] HeadlineEval =
        [("model_behavior_preservation", "kl_div_score"), ("model_performance_preservation", "ce_loss_score"), ("reconstruction_quality", "explained_variance"), ("sparsity", "l0")];

    private static double? EvalValue(JsonObject? eval, string group, string metric) =>
        (eval?[group]?[metric] as JsonValue)?.TryGetValue(out double v) == true ? v : null;

    public static string Overview(ServeCatalog catalog)
    {
        var sb = new StringBuilder("<p>Every SAE served here, with its analysis metrics, eval metrics (from eval.json, when given) and feature-density histogram.</p>");
        sb.Append("<table id=\"stores\"><tr><th>store</th><th>architecture</th><th>d_in × d_sae</th><th>hook</th><th>tokens analysed</th>");
        foreach (var m in HeadlineMetrics) sb.Append($"<th>{E(m)}</th>");
        foreach (var (_, m) in HeadlineEval) sb.Append($"<th>eval {E(m)}</th>");
        sb.Append("<th>live</th></tr>");
        foreach (var s in catalog.Stores)
        {
            var v = Views.Store(catalog, s);
            sb.Append($"<tr><td class=\"l\"><a href=\"/stores/{s.Id}\">{E(s.Name)}</a></td><td>{E(v.Architecture)}</td><td>{v.DIn} × {v.DSae}</td><td>{E(v.HookName)}</td><td>{v.Positions:N0}</td>");
            foreach (var m in HeadlineMetrics) sb.Append($"<td>{F(v.Metrics.TryGetValue(m, out double x) ? x : double.NaN)}</td>");
            foreach (var (g, m) in HeadlineEval) sb.Append($"<td>{F(EvalValue(v.EvalMetrics, g, m))}</td>");
            sb.Append($"<td>{(v.Live ? "search, steer" : E("no: " + v.LiveUnavailable))}</td></tr>");
        }
        sb.Append("</table>");
        foreach (var s in catalog.Stores)
            sb.Append($"<figure class=\"fig\"><img src=\"/stores/{s.Id}/density.svg\" width=\"800\" height=\"480\" alt=\"feature density of {E(s.Name)}\"><figcaption>{E(s.Name)}</figcaption></figure>");
        if (catalog.Matches.Count > 0)
        {
            sb.Append("<h2>Feature matching through checkpoints</h2><ul>");
            foreach (var m in catalog.Matches) sb.Append($"<li><a href=\"/matches/{m.Id}\">{E(m.Name)}</a>: {m.Checkpoints.Count} checkpoints, reference {E(m.Reference.Name)}</li>");
            sb.Append("</ul>");
        }
        return Layout(catalog, "SAEs", sb.ToString());
    }

    public static string Store(ServeCatalog catalog, ServedStore s)
    {
        var v = Views.Store(catalog, s);
        var sb = new StringBuilder();
        sb.Append(KeyValues([
            ("SAE", v.SaePath), ("architecture", v.Architecture), ("d_in × d_sae", $"{v.DIn} × {v.DSae}"), ("hook", v.HookName), ("model", v.ModelPath ?? "—"),
            ("data", v.DatasetPath ?? "—"),
            ("input", v.Input == "tokens" ? $"{v.Sequences:N0} contexts, {v.Positions:N0} analysed tokens" : $"{v.Positions:N0} documents (one activation each)"),
            ("logit tables", v.LogitNote), ("live search and steering", v.Live ? "yes" : "no: " + v.LiveUnavailable)], "summary"));
        sb.Append("<div class=\"cols\"><div><h2>Analysis metrics</h2>").Append(KeyValues(v.Metrics.Select(kv => (kv.Key, F(kv.Value))), "metrics")).Append("</div>");
        if (v.EvalMetrics is not null)
        {
            sb.Append($"<div><h2>Eval metrics</h2><p class=\"note\">{E(v.EvalFile)}</p>");
            foreach (var (group, values) in v.EvalMetrics)
            {
                if (values is not JsonObject g) continue;
                sb.Append($"<h3>{E(group)}</h3>").Append(KeyValues(g.Select(kv => (kv.Key, (kv.Value as JsonValue)?.TryGetValue(out double d) == true ? F(d) : "—"))));
            }
            sb.Append("</div>");
        }
        sb.Append("</div>");
        sb.Append($"<h2>Feature density</h2><img src=\"{v.DensityFigure}\" width=\"800\" height=\"480\" alt=\"feature density\">");
        foreach (var (by, label) in new[] { ("density", "densest"), ("max_activation", "largest max activation") })
        {
            var top = Views.Features(s, new FeatureListQuery(by, true, 0, 10, null, null, null, false));
            sb.Append($"<h2>The {label}</h2>").Append(FeatureTable(s, top.Rows)).Append($"<p><a href=\"/stores/{s.Id}/features?sort={by}&amp;order=desc\">All latents by {E(by)}</a></p>");
        }
        return Layout(catalog, s.Name, sb.ToString(), s);
    }

    private static readonly (string Column, string Label)[] ListColumns =
        [("feature", "feature"), ("", "fires"), ("density", "density"), ("max_activation", "max activation"), ("mean_activation", "mean activation"), ("", "mean when firing"), ("", "decoder norm")];

    private static string FeatureTable(ServedStore s, IEnumerable<Analysis.FeatureSummaryRow> rows, FeatureListQuery? sortable = null)
    {
        var sb = new StringBuilder("<table class=\"features\"><tr>");
        foreach (var (col, label) in ListColumns)
        {
            if (sortable is null || col.Length == 0) { sb.Append($"<th>{E(label)}</th>"); continue; }
            bool desc = !(sortable.Sort == col && sortable.Descending);
            string arrow = sortable.Sort == col ? (sortable.Descending ? " ▼" : " ▲") : "";
            sb.Append($"<th><a href=\"?{E(sortable.QueryString(offset: 0, sort: col, descending: desc))}\">{E(label)}{arrow}</a></th>");
        }
        sb.Append("</tr>");
        foreach (var r in rows)
            sb.Append($"<tr><td><a href=\"/stores/{s.Id}/features/{r.Feature}\">{r.Feature}</a></td><td>{r.Fires:N0}</td><td>{F(r.Density, "0.000e+0")}</td>" +
                      $"<td>{F(r.MaxActivation)}</td><td>{F(r.MeanActivation)}</td><td>{F(r.MeanActiveActivation)}</td><td>{F(r.DecoderNorm)}</td></tr>");
        return sb.Append("</table>").ToString();
    }

    public static string Features(ServeCatalog catalog, ServedStore s, FeatureListQuery q)
    {
        var v = Views.Features(s, q);
        var sb = new StringBuilder();
        string Val(double? d) => d is double x ? x.ToString("R", CultureInfo.InvariantCulture) : "";
        sb.Append("<form class=\"filter\" method=\"get\">")
          .Append($"<input type=\"hidden\" name=\"sort\" value=\"{E(q.Sort)}\"><input type=\"hidden\" name=\"order\" value=\"{(q.Descending ? "desc" : "asc")}\">")
          .Append($"<label>density from <input name=\"min_density\" size=\"9\" value=\"{Val(q.MinDensity)}\"></label>")
          .Append($"<label>to <input name=\"max_density\" size=\"9\" value=\"{Val(q.MaxDensity)}\"></label>")
          .Append($"<label>max activation at least <input name=\"min_max_activation\" size=\"7\" value=\"{Val(q.MinMaxActivation)}\"></label>")
          .Append($"<label><input type=\"checkbox\" name=\"hide_dead\" value=\"true\"{(q.HideDead ? " checked" : "")}> hide dead latents</label>")
          .Append($"<label>rows <input name=\"limit\" size=\"4\" value=\"{q.Limit}\"></label><button type=\"submit\">Filter</button></form>");
        int last = Math.Min(v.Total, q.Offset + v.Rows.Count);
        sb.Append($"<p id=\"count\">{(v.Rows.Count == 0 ? "no latents" : $"latents {q.Offset + 1}–{last}")} of {v.Total:N0} passing the filter ({s.DSae:N0} in all)</p>");
        sb.Append(FeatureTable(s, v.Rows, q));
        sb.Append("<p class=\"paging\">");
        if (q.Offset > 0) sb.Append($"<a id=\"prev\" href=\"?{E(q.QueryString(offset: Math.Max(0, q.Offset - q.Limit)))}\">← previous</a> ");
        if (last < v.Total) sb.Append($"<a id=\"next\" href=\"?{E(q.QueryString(offset: q.Offset + q.Limit))}\">next →</a>");
        sb.Append("</p>");
        return Layout(catalog, $"{s.Name}: features", sb.ToString(), s);
    }

    public static string Feature(ServeCatalog catalog, ServedStore s, int feature)
    {
        var v = Views.Feature(catalog, s, feature);
        var d = v.Detail;
        var st = d.Stats;
        var sb = new StringBuilder("<p class=\"paging\">");
        if (feature > 0) sb.Append($"<a href=\"/stores/{s.Id}/features/{feature - 1}\">← feature {feature - 1}</a> ");
        if (feature + 1 < s.DSae) sb.Append($"<a href=\"/stores/{s.Id}/features/{feature + 1}\">feature {feature + 1} →</a>");
        sb.Append($" · <a href=\"/stores/{s.Id}/steer?features={feature}\">steer with this feature</a>");
        foreach (var m in v.Matches) sb.Append($" · <a href=\"{m.Url}\">through checkpoints ({E(m.Name)})</a>");
        sb.Append("</p>");
        sb.Append($"<p id=\"stats\">density {F(st.Density, "0.000%")} ({st.Fires:N0} firings) · max activation {F(st.MaxActivation)} · mean activation {F(st.MeanActivation)} · " +
                  $"mean when firing {F(st.MeanActiveActivation)} · decoder norm {F(st.DecoderNorm)}</p>");
        sb.Append("<section class=\"dashboard\"><div class=\"cols\"><div class=\"left\">");
        sb.Append($"<img src=\"{v.ActivationFigure}\" width=\"640\" height=\"384\" alt=\"activation histogram\">");
        if (d.LogitHistogram is not null || d.TopLogits.Count > 0)
            sb.Append("<div class=\"logits\">").Append(FeatureReport.LogitTable("Negative logits", d.BottomLogits, "neg"))
              .Append(FeatureReport.LogitTable("Positive logits", d.TopLogits, "pos")).Append("</div>");
        else sb.Append($"<p class=\"note\">{E(s.Summary.LogitNote)}</p>");
        sb.Append("</div><div class=\"right\">");
        double max = st.MaxActivation > 0 ? st.MaxActivation : 1;
        sb.Append($"<h2>Top activations · max {F(st.MaxActivation)}</h2><div class=\"examples\" id=\"top-examples\">");
        foreach (var e in d.TopExamples) sb.Append(FeatureReport.Example(e, max));
        if (d.TopExamples.Count == 0) sb.Append("<p class=\"note\">this latent never fired on the analysed tokens</p>");
        sb.Append("</div>");
        foreach (var g in d.QuantileGroups.Reverse())
        {
            if (g.Count == 0) continue;
            sb.Append($"<h3>Interval {F(g.Lower, "F3")} – {F(g.Upper, "F3")} · contains {F(g.Fraction, "0.000%")} of tokens ({g.Count:N0} firings)</h3><div class=\"examples quantile\">");
            foreach (var e in g.Examples) sb.Append(FeatureReport.Example(e, max));
            sb.Append("</div>");
        }
        sb.Append("</div></div></section>");
        return Layout(catalog, $"{s.Name} · feature {feature}", sb.ToString(), s);
    }

    public static string Search(ServeCatalog catalog, ServedStore s, ServeSettings settings)
    {
        var sb = new StringBuilder("<p>Which latents fire on a text: the model and SAE run live on it; the latents of highest mean activation over its tokens " +
                                   "(BOS/EOS left out) are listed, and the tokens are shaded by the selected latent's activation (hover for the value).</p>");
        if (s.Live is null) sb.Append($"<p class=\"error\">No live model for this store: {E(s.LiveUnavailable)}</p>");
        sb.Append($"<form id=\"search-form\" data-store=\"{s.Id}\"><textarea name=\"text\" rows=\"4\" cols=\"90\" maxlength=\"{settings.MaxPromptChars}\">Once upon a time, there was a little girl named Lily.</textarea>")
          .Append($"<label>latents <input name=\"top_k\" type=\"number\" min=\"1\" max=\"{settings.MaxSearchFeatures}\" value=\"20\"></label>")
          .Append("<button type=\"submit\" id=\"search-run\">Search</button></form>")
          .Append("<p id=\"status\" class=\"status\"></p><p id=\"error\" class=\"error\"></p>")
          .Append("<div id=\"search-tokens\" class=\"examples\"></div><div id=\"search-results\"></div>");
        return Layout(catalog, $"{s.Name}: text search", sb.ToString(), s);
    }

    public static string Steer(ServeCatalog catalog, ServedStore s, ServeSettings settings, string? features)
    {
        var sb = new StringBuilder("<p>Generation with and without the features steering the model, every run from the same seed: the baseline (strength 0) " +
                                   "and each strength side by side, with the KL of each generated token's distribution from the unsteered model's.</p>");
        if (s.Live is null) sb.Append($"<p class=\"error\">No live model for this store: {E(s.LiveUnavailable)}</p>");
        string f = features is not null && System.Text.RegularExpressions.Regex.IsMatch(features, "^[0-9]{1,9}$") ? features + "=4" : "";
        sb.Append($"<form id=\"steer-form\" data-store=\"{s.Id}\"><textarea name=\"prompt\" rows=\"3\" cols=\"90\" maxlength=\"{settings.MaxPromptChars}\">Once upon a time</textarea><div class=\"row\">")
          .Append($"<label>features <input name=\"features\" size=\"18\" value=\"{E(f)}\" placeholder=\"12=4, 40=-2\"></label>")
          .Append("<label>strengths <input name=\"strengths\" size=\"10\" value=\"0,1\"></label>")
          .Append("<label>mode <select name=\"mode\"><option>add</option><option>clamp</option><option>ablate</option></select></label>")
          .Append("<label>positions <select name=\"positions\"><option>all</option><option>prompt</option><option>generated</option></select></label>")
          .Append($"<label>new tokens <input name=\"max_tokens\" type=\"number\" min=\"1\" max=\"{settings.MaxNewTokens}\" value=\"{Math.Min(40, settings.MaxNewTokens)}\"></label>")
          .Append("<label>temperature <input name=\"temperature\" size=\"4\" value=\"0.8\"></label>")
          .Append("<label>seed <input name=\"seed\" type=\"number\" min=\"0\" value=\"42\"></label>")
          .Append("<button type=\"submit\" id=\"steer-run\">Generate</button></div></form>")
          .Append("<p id=\"status\" class=\"status\"></p><p id=\"error\" class=\"error\"></p><div id=\"steer-direction\"></div><div id=\"steer-results\" class=\"side-by-side\"></div>");
        return Layout(catalog, $"{s.Name}: steering", sb.ToString(), s);
    }

    public static string Match(ServeCatalog catalog, MatchOutput m)
    {
        var sb = new StringBuilder($"<p>{E(m.Folder)}: latents of the reference SAE <b>{E(m.Reference.Name)}</b> matched by {E(m.MatchedBy)} to each checkpoint's " +
                                   $"(optimal one-to-one assignment on 1 − cosine; matched below distance {F(m.DistanceThreshold)}).</p>");
        sb.Append("<table id=\"checkpoints\"><tr><th>checkpoint</th><th>step</th><th>d_sae</th><th>matched</th><th>unmatched</th><th>dead</th><th>mean matched distance</th><th>mean decoder cosine</th><th>served</th></tr>");
        foreach (var c in m.Checkpoints)
        {
            var store = catalog.StoreOf(c.Path);
            sb.Append($"<tr><td class=\"l\">{E(c.Name)}{(c.Reference ? " (reference)" : "")}</td><td>{(c.Step is long st ? st.ToString(CultureInfo.InvariantCulture) : "—")}</td><td>{c.DSae}</td>" +
                      $"<td>{c.Matched:N0}</td><td>{c.Unmatched:N0}</td><td>{c.Dead:N0}</td><td>{F(c.MeanMatchedDistance)}</td><td>{F(c.MeanMatchedDecoderCosine)}</td>" +
                      $"<td>{(store is null ? "—" : $"<a href=\"/stores/{store.Id}\">{E(store.Name)}</a>")}</td></tr>");
        }
        sb.Append("</table>");
        sb.Append($"<form method=\"get\" id=\"match-latent\" data-match=\"{m.Id}\"><label>reference latent <input name=\"latent\" type=\"number\" min=\"0\" max=\"{m.ReferenceLatents - 1}\" value=\"0\"></label><button type=\"submit\">Follow</button></form>");
        return Layout(catalog, $"Matching: {m.Name}", sb.ToString(), catalog.StoreOf(m.Reference.Path));
    }

    public static string MatchLatent(ServeCatalog catalog, MatchOutput m, int latent)
    {
        var v = Views.MatchLatent(catalog, m, latent);
        var refStore = catalog.StoreOf(m.Reference.Path);
        var sb = new StringBuilder($"<p>Reference latent {latent} of {E(m.Reference.Name)}");
        if (refStore is not null) sb.Append($" (<a href=\"/stores/{refStore.Id}/features/{latent}\">its feature page</a>)");
        sb.Append($" and its partner at every checkpoint. <a href=\"/matches/{m.Id}\">All checkpoints</a></p>");
        sb.Append("<table id=\"match-path\"><tr><th>checkpoint</th><th>step</th><th>partner latent</th><th>distance</th><th>decoder cosine</th><th>status</th></tr>");
        foreach (var r in v.Checkpoints)
        {
            string partner = r.Latent is int l ? (r.FeatureUrl is null ? l.ToString(CultureInfo.InvariantCulture) : $"<a href=\"{r.FeatureUrl}\">{l}</a>") : "—";
            sb.Append($"<tr class=\"{E(r.Status)}\"><td class=\"l\">{E(r.Checkpoint)}{(r.Reference ? " (reference)" : "")}</td><td>{(r.Step is long st ? st.ToString(CultureInfo.InvariantCulture) : "—")}</td>" +
                      $"<td>{partner}</td><td>{F(r.Distance, "F3")}</td><td>{F(r.DecoderCosine, "F3")}</td><td>{E(r.Status)}</td></tr>");
        }
        sb.Append("</table><p class=\"paging\">");
        if (latent > 0) sb.Append($"<a href=\"/matches/{m.Id}/latents/{latent - 1}\">← latent {latent - 1}</a> ");
        if (latent + 1 < m.ReferenceLatents) sb.Append($"<a href=\"/matches/{m.Id}/latents/{latent + 1}\">latent {latent + 1} →</a>");
        sb.Append("</p>");
        return Layout(catalog, $"Matching {m.Name}: latent {latent}", sb.ToString(), refStore);
    }
}
