using System.Text.Json.Nodes;
using SaeSharp.Analysis;

namespace SaeSharp.Server;

/// <summary>A served store as the overview and its JSON show it.</summary>
public sealed record StoreView(int Id, string Name, string SaePath, string Architecture, int DIn, int DSae, string HookName, string? ModelPath, string? DatasetPath,
    string Input, long Sequences, long Positions, string LogitNote, IReadOnlyDictionary<string, double> Metrics, JsonObject? EvalMetrics, string? EvalFile,
    bool Live, string? LiveUnavailable, string DensityFigure, IReadOnlyList<int> Matches);

/// <summary>One page of the feature list: the rows, and how many latents pass the filter in all.</summary>
public sealed record FeatureListView(int Store, int Total, int Offset, int Limit, string Sort, string Order, IReadOnlyList<FeatureSummaryRow> Rows);

/// <summary>A feature's page: the store's details of the latent (the feature store's dashboard data) and where to go from it.</summary>
public sealed record FeatureView(int Store, string StoreName, int DSae, FeatureDetail Detail, string ActivationFigure, IReadOnlyList<MatchLink> Matches);

/// <summary>A match output that follows this latent (as its reference) through checkpoints.</summary>
public sealed record MatchLink(int Match, string Name, string Url);

/// <summary>A reference latent through a match's checkpoints: one row per checkpoint, with a link to the partner's feature page where that SAE is served.</summary>
public sealed record MatchLatentView(int Match, string Name, int ReferenceLatent, string MatchedBy, double? DistanceThreshold, IReadOnlyList<MatchLatentRow> Checkpoints);

public sealed record MatchLatentRow(string Checkpoint, long? Step, bool Reference, int? Latent, double? Distance, double? DecoderCosine, string Status, string? FeatureUrl);

/// <summary>The data behind the pages, shared by the HTML and the JSON endpoints.</summary>
public static class Views
{
    public static StoreView Store(ServeCatalog catalog, ServedStore s)
    {
        var m = s.Summary;
        return new StoreView(s.Id, s.Name, m.SaePath, m.Architecture, m.DIn, m.DSae, m.HookName, m.ModelPath, m.DatasetPath, m.Input, m.Sequences, m.Positions,
            m.LogitNote, m.Metrics, s.EvalMetrics, s.EvalFile, s.Live is not null, s.LiveUnavailable, $"/stores/{s.Id}/density.svg",
            catalog.MatchesFrom(s).Select(x => x.Id).ToArray());
    }

    /// <summary>The latents passing <paramref name="q"/>'s filter, in its order, one page of them.</summary>
    public static FeatureListView Features(ServedStore s, FeatureListQuery q)
    {
        var order = s.Order(q.Sort);
        var rows = s.Rows;
        bool Pass(FeatureSummaryRow r) =>
            (q.MinDensity is not double lo || r.Density >= lo) && (q.MaxDensity is not double hi || r.Density <= hi) &&
            (q.MinMaxActivation is not double ma || r.MaxActivation >= ma) && (!q.HideDead || r.Fires > 0);
        var page = new List<FeatureSummaryRow>(Math.Min(q.Limit, rows.Count));
        int total = 0;
        for (int i = 0; i < order.Length; i++)
        {
            var r = rows[order[q.Descending ? order.Length - 1 - i : i]];
            if (!Pass(r)) continue;
            if (total >= q.Offset && page.Count < q.Limit) page.Add(r);
            total++;
        }
        return new FeatureListView(s.Id, total, q.Offset, q.Limit, q.Sort, q.Descending ? "desc" : "asc", page);
    }

    public static FeatureView Feature(ServeCatalog catalog, ServedStore s, int feature) =>
        new(s.Id, s.Name, s.DSae, s.Read(r => r.Detail(feature)), $"/stores/{s.Id}/features/{feature}/activations.svg",
            catalog.MatchesFrom(s).Select(m => new MatchLink(m.Id, m.Name, $"/matches/{m.Id}/latents/{feature}")).ToArray());

    public static MatchLatentView MatchLatent(ServeCatalog catalog, MatchOutput m, int latent) =>
        new(m.Id, m.Name, latent, m.MatchedBy, m.DistanceThreshold, m.Checkpoints.Select((c, col) =>
        {
            var cell = m.Cell(latent, col);
            var store = catalog.StoreOf(c.Path);
            string? url = store is not null && cell.Latent is int l && l < store.DSae ? $"/stores/{store.Id}/features/{l}" : null;
            return new MatchLatentRow(c.Name, c.Step, c.Reference, cell.Latent, cell.Distance, cell.DecoderCosine, cell.Status, url);
        }).ToArray());
}
