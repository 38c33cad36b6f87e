using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using SaeSharp.IO;

namespace SaeSharp.Analysis;

/// <summary>What reports (and the browser) read about an analysis: its summary, every latent's statistics row, and one latent's details on demand.</summary>
public interface IFeatureSource
{
    AnalysisSummary Summary { get; }
    /// <summary>Every latent's statistics, in feature order.</summary>
    IReadOnlyList<FeatureSummaryRow> Rows { get; }
    FeatureDetail Detail(int feature);
}

/// <summary>
/// The feature store: one SQLite file (<c>features.db</c>) per analysis, the contract between the analysis and
/// everything that shows features. Written once, atomically (a temp file renamed into place); readers open it
/// read-only. Schema version 1 (also described by the <c>schema_version</c> table and in README.md):
/// <list type="bullet">
/// <item><c>schema_version(version, description)</c>: one row;</item>
/// <item><c>meta(key, value)</c>: the analysis summary (sae_name, sae_path, architecture, d_in, d_sae, hook_name,
/// model_path, dataset_path, input, sequences, positions, logit_note) and the JSON objects <c>settings</c> and
/// <c>sae_cfg</c>;</item>
/// <item><c>metrics(name, value)</c>: overall metrics (l0, explained_variance, mse, dead_latents, frac_alive, ...);</item>
/// <item><c>features(feature, fires, density, max_activation, min_activation, mean_activation,
/// mean_active_activation, decoder_norm)</c>, indexed on density, max_activation and mean_activation for paging in
/// either order;</item>
/// <item><c>histograms(feature, kind, min, max, counts)</c>: kind activations, logits or decoder; counts a JSON array of
/// equal-width bins over [min, max];</item>
/// <item><c>quantile_groups(feature, group_index, lower, upper, count, fraction)</c>: the intervals (lower, upper];</item>
/// <item><c>examples(feature, kind, group_index, rank, activation, sequence, position, context_start, center, token_ids,
/// tokens, acts, text)</c>: kind top (group_index 0) or quantile; token_ids, tokens (strings) and acts (the latent's
/// activation at each context token) are JSON arrays of equal length, center indexes the example's own token;</item>
/// <item><c>logits(feature, side, rank, token_id, token, value)</c>: side top or bottom.</item>
/// </list>
/// Keyed tables are WITHOUT ROWID, clustered by feature, so one latent's rows are one range read.
/// </summary>
public static class FeatureStore
{
    public const string FileName = "features.db";
    public const int SchemaVersion = 1;

    private const string Schema = """
        CREATE TABLE schema_version (version INTEGER NOT NULL, description TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE metrics (name TEXT PRIMARY KEY, value REAL) WITHOUT ROWID;
        CREATE TABLE features (feature INTEGER PRIMARY KEY, fires INTEGER NOT NULL, density REAL NOT NULL,
            max_activation REAL NOT NULL, min_activation REAL NOT NULL, mean_activation REAL NOT NULL,
            mean_active_activation REAL NOT NULL, decoder_norm REAL NOT NULL);
        CREATE INDEX features_by_density ON features (density, feature);
        CREATE INDEX features_by_max_activation ON features (max_activation, feature);
        CREATE INDEX features_by_mean_activation ON features (mean_activation, feature);
        CREATE TABLE histograms (feature INTEGER NOT NULL, kind TEXT NOT NULL, min REAL NOT NULL, max REAL NOT NULL, counts TEXT NOT NULL,
            PRIMARY KEY (feature, kind)) WITHOUT ROWID;
        CREATE TABLE quantile_groups (feature INTEGER NOT NULL, group_index INTEGER NOT NULL, lower REAL NOT NULL, upper REAL NOT NULL,
            count INTEGER NOT NULL, fraction REAL NOT NULL, PRIMARY KEY (feature, group_index)) WITHOUT ROWID;
        CREATE TABLE examples (feature INTEGER NOT NULL, kind TEXT NOT NULL, group_index INTEGER NOT NULL, rank INTEGER NOT NULL,
            activation REAL NOT NULL, sequence INTEGER NOT NULL, position INTEGER NOT NULL, context_start INTEGER NOT NULL,
            center INTEGER NOT NULL, token_ids TEXT NOT NULL, tokens TEXT NOT NULL, acts TEXT NOT NULL, text TEXT,
            PRIMARY KEY (feature, kind, group_index, rank)) WITHOUT ROWID;
        CREATE TABLE logits (feature INTEGER NOT NULL, side TEXT NOT NULL, rank INTEGER NOT NULL, token_id INTEGER NOT NULL,
            token TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (feature, side, rank)) WITHOUT ROWID;
        """;

    /// <summary>The columns <see cref="FeatureStoreReader.Page"/> sorts by.</summary>
    public static readonly string[] SortColumns = ["feature", "density", "max_activation", "mean_activation"];

    /// <summary>Writes <paramref name="analysis"/> to <paramref name="path"/> (a temp file renamed into place).</summary>
    public static void Write(string path, FeatureAnalysis analysis)
    {
        // An analysis of some latents only (FeatureAnalyzer.Latents) is for showing them, not a store.
        if (analysis.Features.Count != analysis.Summary.DSae)
            throw new ArgumentException($"{path}: a feature store holds every latent; this analysis holds {analysis.Features.Count} of {analysis.Summary.DSae}");
        WriteStore(path, analysis);
    }

    private static void WriteStore(string path, FeatureAnalysis analysis) => AtomicFile.WriteVia(path, tmp =>
    {
        using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = tmp, Pooling = false, Mode = SqliteOpenMode.ReadWriteCreate }.ToString());
        db.Open();
        // The file becomes visible only after the rename, so the journal buys nothing.
        Execute(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;");
        using var tx = db.BeginTransaction();
        Execute(db, Schema);
        using (var v = Command(db, "INSERT INTO schema_version VALUES ($version, $description)"))
            Run(v, SchemaVersion, "SaeSharp feature store: meta, metrics, features, histograms, quantile_groups, examples, logits");
        using (var meta = Command(db, "INSERT INTO meta VALUES ($key, $value)"))
            foreach (var (k, val) in MetaRows(analysis.Summary)) Run(meta, k, val);
        using (var m = Command(db, "INSERT INTO metrics VALUES ($name, $value)"))
            foreach (var (k, val) in analysis.Summary.Metrics) Run(m, k, double.IsFinite(val) ? val : null);
        using var feature = Command(db, "INSERT INTO features VALUES ($f, $fires, $density, $max, $min, $mean, $meanActive, $norm)");
        using var hist = Command(db, "INSERT INTO histograms VALUES ($f, $kind, $min, $max, $counts)");
        using var group = Command(db, "INSERT INTO quantile_groups VALUES ($f, $g, $lower, $upper, $count, $fraction)");
        using var example = Command(db, "INSERT INTO examples VALUES ($f, $kind, $g, $rank, $act, $seq, $pos, $start, $center, $ids, $tokens, $acts, $text)");
        using var logit = Command(db, "INSERT INTO logits VALUES ($f, $side, $rank, $id, $token, $value)");
        var json = new JsonArrays();
        foreach (var d in analysis.Features)
        {
            var s = d.Stats;
            Run(feature, s.Feature, s.Fires, s.Density, s.MaxActivation, s.MinActivation, s.MeanActivation, s.MeanActiveActivation, s.DecoderNorm);
            void Hist(string kind, Histogram? h)
            {
                if (h is not null) Run(hist, s.Feature, kind, h.Min, h.Max, json.Longs(h.Counts));
            }
            Hist("activations", d.ActivationHistogram);
            Hist("decoder", d.DecoderHistogram);
            Hist("logits", d.LogitHistogram);
            void Example(FeatureExample e) => Run(example, s.Feature, e.Kind == ExampleKind.Top ? "top" : "quantile", e.Group, e.Rank, e.Activation,
                e.Sequence, e.Position, e.ContextStart, e.Center, json.Ints(e.TokenIds), json.Strings(e.Tokens), json.Floats(e.Acts), e.Text);
            foreach (var e in d.TopExamples) Example(e);
            foreach (var g in d.QuantileGroups)
            {
                Run(group, s.Feature, g.Index, g.Lower, g.Upper, g.Count, g.Fraction);
                foreach (var e in g.Examples) Example(e);
            }
            for (int i = 0; i < d.TopLogits.Count; i++) Run(logit, s.Feature, "top", i, d.TopLogits[i].TokenId, d.TopLogits[i].Token, d.TopLogits[i].Value);
            for (int i = 0; i < d.BottomLogits.Count; i++) Run(logit, s.Feature, "bottom", i, d.BottomLogits[i].TokenId, d.BottomLogits[i].Token, d.BottomLogits[i].Value);
        }
        tx.Commit();
    });

    /// <summary>Opens a store read-only, checking its schema version.</summary>
    public static FeatureStoreReader Open(string path) => new(path);

    private static IEnumerable<(string, object)> MetaRows(AnalysisSummary s)
    {
        yield return ("sae_name", s.SaeName);
        yield return ("sae_path", s.SaePath);
        yield return ("architecture", s.Architecture);
        yield return ("d_in", s.DIn.ToString(CultureInfo.InvariantCulture));
        yield return ("d_sae", s.DSae.ToString(CultureInfo.InvariantCulture));
        yield return ("hook_name", s.HookName);
        if (s.ModelPath is not null) yield return ("model_path", s.ModelPath);
        if (s.DatasetPath is not null) yield return ("dataset_path", s.DatasetPath);
        yield return ("input", s.Input);
        yield return ("sequences", s.Sequences.ToString(CultureInfo.InvariantCulture));
        yield return ("positions", s.Positions.ToString(CultureInfo.InvariantCulture));
        yield return ("logit_note", s.LogitNote);
        yield return ("settings", s.Settings.ToJsonString());
        yield return ("sae_cfg", s.SaeConfig.ToJsonString());
    }

    /// <summary>
    /// JSON arrays for the store's columns, written directly (a million example rows make the serializer's reflection
    /// cost show); each token string is escaped once and reused.
    /// </summary>
    private sealed class JsonArrays
    {
        private readonly System.Text.StringBuilder _sb = new();
        private readonly Dictionary<string, string> _escaped = new(StringComparer.Ordinal);

        private string Join<T>(ReadOnlySpan<T> values, Action<System.Text.StringBuilder, T> item)
        {
            _sb.Clear().Append('[');
            for (int i = 0; i < values.Length; i++)
            {
                if (i > 0) _sb.Append(',');
                item(_sb, values[i]);
            }
            return _sb.Append(']').ToString();
        }

        public string Ints(int[] v) => Join<int>(v, (sb, x) => sb.Append(x));
        public string Longs(long[] v) => Join<long>(v, (sb, x) => sb.Append(x));
        // Shortest round-trip form; the store never holds a non-finite activation (only firings, > 0, and zeros).
        public string Floats(float[] v) => Join<float>(v, (sb, x) => sb.Append(x.ToString("R", CultureInfo.InvariantCulture)));
        public string Strings(string[] v) => Join<string>(v, (sb, x) =>
        {
            if (!_escaped.TryGetValue(x, out var e))
                _escaped[x] = e = JsonSerializer.Serialize(x, StringOptions);
            sb.Append(e);
        });

        private static readonly JsonSerializerOptions StringOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    }

    internal static void Execute(SqliteConnection db, string sql)
    {
        using var c = db.CreateCommand();
        c.CommandText = sql;
        c.ExecuteNonQuery();
    }

    /// <summary>A prepared command whose parameters are its <c>$name</c>s, in order.</summary>
    private static SqliteCommand Command(SqliteConnection db, string sql)
    {
        var c = db.CreateCommand();
        c.CommandText = sql;
        foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(sql, @"\$\w+"))
            c.Parameters.Add(new SqliteParameter(m.Value, null));
        c.Prepare();
        return c;
    }

    private static void Run(SqliteCommand c, params object?[] values)
    {
        for (int i = 0; i < values.Length; i++) c.Parameters[i].Value = values[i] ?? DBNull.Value;
        c.ExecuteNonQuery();
    }
}

/// <summary>
/// A feature store opened read-only: the summary, pages of latents sorted by a statistic, and one latent's details,
/// each a query (nothing is loaded up front beyond the summary).
/// </summary>
public sealed class FeatureStoreReader : IFeatureSource, IDisposable
{
    private readonly SqliteConnection _db;
    private readonly string _path;
    private IReadOnlyList<FeatureSummaryRow>? _rows;

    internal FeatureStoreReader(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"feature store '{path}' does not exist", path);
        _path = path;
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        try
        {
            _db.Open();
            long version = Scalar<long>("SELECT version FROM schema_version");
            if (version != FeatureStore.SchemaVersion)
                throw new InvalidDataException($"{path}: feature store schema version {version}; this SaeSharp reads version {FeatureStore.SchemaVersion}");
            Summary = ReadSummary();
        }
        catch (SqliteException e)
        {
            _db.Dispose();
            throw new InvalidDataException($"{path}: not a SaeSharp feature store ({e.Message})");
        }
        catch
        {
            _db.Dispose();
            throw;
        }
    }

    public AnalysisSummary Summary { get; }

    public int FeatureCount => Summary.DSae;

    /// <summary>Every latent's statistics in feature order (read once, then kept).</summary>
    public IReadOnlyList<FeatureSummaryRow> Rows => _rows ??= Page("feature", descending: false, 0, int.MaxValue);

    /// <summary>
    /// <paramref name="limit"/> latents from <paramref name="offset"/> sorted by <paramref name="orderBy"/> (one of
    /// <see cref="FeatureStore.SortColumns"/>), ties by feature index.
    /// </summary>
    public IReadOnlyList<FeatureSummaryRow> Page(string orderBy, bool descending, int offset, int limit)
    {
        if (!FeatureStore.SortColumns.Contains(orderBy))
            throw new ArgumentException($"order by: expected one of {string.Join(", ", FeatureStore.SortColumns)}, got '{orderBy}'");
        string dir = descending ? "DESC" : "ASC";
        using var c = Query($"SELECT feature, fires, density, max_activation, min_activation, mean_activation, mean_active_activation, decoder_norm FROM features ORDER BY {orderBy} {dir}, feature {dir} LIMIT $limit OFFSET $offset",
            ("$limit", limit), ("$offset", offset));
        using var r = c.ExecuteReader();
        var rows = new List<FeatureSummaryRow>();
        while (r.Read()) rows.Add(new FeatureSummaryRow(r.GetInt32(0), r.GetInt64(1), r.GetDouble(2), r.GetDouble(3), r.GetDouble(4), r.GetDouble(5), r.GetDouble(6), r.GetDouble(7)));
        return rows;
    }

    /// <summary>One latent's histograms, examples, quantile groups and logit tables.</summary>
    public FeatureDetail Detail(int feature)
    {
        if (feature < 0 || feature >= FeatureCount) throw new ArgumentOutOfRangeException(nameof(feature), $"feature {feature} outside [0, {FeatureCount})");
        var stats = Page("feature", false, feature, 1)[0];
        var hist = new Dictionary<string, Histogram>();
        using (var c = Query("SELECT kind, min, max, counts FROM histograms WHERE feature = $f", ("$f", feature)))
        using (var r = c.ExecuteReader())
            while (r.Read()) hist[r.GetString(0)] = new Histogram(r.GetDouble(1), r.GetDouble(2), Json<long[]>(r.GetString(3)));
        var top = new List<FeatureExample>();
        var byGroup = new Dictionary<int, List<FeatureExample>>();
        using (var c = Query("SELECT kind, group_index, rank, activation, sequence, position, context_start, token_ids, tokens, acts, text FROM examples WHERE feature = $f ORDER BY kind, group_index, rank", ("$f", feature)))
        using (var r = c.ExecuteReader())
            while (r.Read())
            {
                var kind = r.GetString(0) == "top" ? ExampleKind.Top : ExampleKind.Quantile;
                var e = new FeatureExample(feature, kind, r.GetInt32(1), r.GetInt32(2), r.GetFloat(3), r.GetInt64(4), r.GetInt32(5), r.GetInt32(6),
                    Json<int[]>(r.GetString(7)), Json<string[]>(r.GetString(8)), Json<float[]>(r.GetString(9))) { Text = r.IsDBNull(10) ? null : r.GetString(10) };
                if (kind == ExampleKind.Top) top.Add(e);
                else (byGroup.TryGetValue(e.Group, out var l) ? l : byGroup[e.Group] = []).Add(e);
            }
        var groups = new List<QuantileGroup>();
        using (var c = Query("SELECT group_index, lower, upper, count, fraction FROM quantile_groups WHERE feature = $f ORDER BY group_index", ("$f", feature)))
        using (var r = c.ExecuteReader())
            while (r.Read())
                groups.Add(new QuantileGroup(r.GetInt32(0), r.GetDouble(1), r.GetDouble(2), r.GetInt64(3), r.GetDouble(4),
                    byGroup.TryGetValue(r.GetInt32(0), out var l) ? l : []));
        var logits = new Dictionary<string, List<LogitEntry>> { ["top"] = [], ["bottom"] = [] };
        using (var c = Query("SELECT side, token_id, token, value FROM logits WHERE feature = $f ORDER BY side, rank", ("$f", feature)))
        using (var r = c.ExecuteReader())
            while (r.Read()) logits[r.GetString(0)].Add(new LogitEntry(r.GetInt32(1), r.GetString(2), r.GetFloat(3)));
        return new FeatureDetail
        {
            Stats = stats,
            ActivationHistogram = hist.GetValueOrDefault("activations") ?? throw new InvalidDataException($"{_path}: feature {feature} has no activation histogram"),
            DecoderHistogram = hist.GetValueOrDefault("decoder") ?? throw new InvalidDataException($"{_path}: feature {feature} has no decoder histogram"),
            LogitHistogram = hist.GetValueOrDefault("logits"),
            TopExamples = top,
            QuantileGroups = groups,
            TopLogits = logits["top"],
            BottomLogits = logits["bottom"],
        };
    }

    private AnalysisSummary ReadSummary()
    {
        var meta = new Dictionary<string, string>();
        using (var c = Query("SELECT key, value FROM meta"))
        using (var r = c.ExecuteReader())
            while (r.Read()) meta[r.GetString(0)] = r.GetString(1);
        var metrics = new Dictionary<string, double>();
        using (var c = Query("SELECT name, value FROM metrics"))
        using (var r = c.ExecuteReader())
            while (r.Read()) metrics[r.GetString(0)] = r.IsDBNull(1) ? double.NaN : r.GetDouble(1);
        string Need(string key) => meta.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"{_path}: meta has no '{key}'");
        return new AnalysisSummary
        {
            SaeName = Need("sae_name"),
            SaePath = Need("sae_path"),
            Architecture = Need("architecture"),
            DIn = int.Parse(Need("d_in"), CultureInfo.InvariantCulture),
            DSae = int.Parse(Need("d_sae"), CultureInfo.InvariantCulture),
            HookName = Need("hook_name"),
            ModelPath = meta.GetValueOrDefault("model_path"),
            DatasetPath = meta.GetValueOrDefault("dataset_path"),
            Input = Need("input"),
            Sequences = long.Parse(Need("sequences"), CultureInfo.InvariantCulture),
            Positions = long.Parse(Need("positions"), CultureInfo.InvariantCulture),
            LogitNote = Need("logit_note"),
            Metrics = metrics,
            Settings = JsonNode.Parse(Need("settings")) as JsonObject ?? throw new InvalidDataException($"{_path}: meta settings is not a JSON object"),
            SaeConfig = JsonNode.Parse(Need("sae_cfg")) as JsonObject ?? throw new InvalidDataException($"{_path}: meta sae_cfg is not a JSON object"),
        };
    }

    private T Json<T>(string s) => JsonSerializer.Deserialize<T>(s) ?? throw new InvalidDataException($"{_path}: a JSON column holds null");

    private SqliteCommand Query(string sql, params (string Name, object Value)[] args)
    {
        var c = _db.CreateCommand();
        c.CommandText = sql;
        foreach (var (n, v) in args) c.Parameters.AddWithValue(n, v);
        return c;
    }

    private T Scalar<T>(string sql)
    {
        using var c = Query(sql);
        return (T)Convert.ChangeType(c.ExecuteScalar() ?? throw new InvalidDataException($"{_path}: '{sql}' returned nothing"), typeof(T), CultureInfo.InvariantCulture);
    }

    public void Dispose() => _db.Dispose();
}
