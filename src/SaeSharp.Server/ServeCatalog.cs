using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Tensors;

namespace SaeSharp.Server;

/// <summary>
/// Everything the browser serves, opened once at start from the command line's paths: the stores (numbered in the
/// order given), their eval metrics and live models, and the match outputs. After this nothing is opened by path:
/// requests name stores, latents, matches and jobs by number, and assets by name from the assembly.
/// </summary>
public sealed class ServeCatalog : IDisposable
{
    public IReadOnlyList<ServedStore> Stores { get; }
    public IReadOnlyList<MatchOutput> Matches { get; }

    private ServeCatalog(IReadOnlyList<ServedStore> stores, IReadOnlyList<MatchOutput> matches)
    {
        Stores = stores;
        Matches = matches;
    }

    public static ServeCatalog Open(ServeInputs inputs, ServeSettings settings, Compute compute)
    {
        if (inputs.Stores.Count == 0) throw new ArgumentException("give at least one --store (a folder holding features.db, or the file)");
        var stores = new List<ServedStore>();
        try
        {
            var names = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var given in inputs.Stores)
            {
                string path = Directory.Exists(given) ? Path.Combine(given, FeatureStore.FileName) : given;
                if (!File.Exists(path)) throw new FileNotFoundException($"--store {given}: no {FeatureStore.FileName} there (write one with saesharp analyze)", path);
                string name;
                using (var probe = FeatureStore.Open(path)) name = probe.Summary.SaeName;
                int seen = names[name] = names.GetValueOrDefault(name) + 1;
                var store = new ServedStore(stores.Count, seen == 1 ? name : $"{name}-{seen}", Path.GetFullPath(path), settings.ReadersPerStore);
                stores.Add(store);
                AttachLive(store, inputs.ModelPath, compute);
            }
            var evalFiles = inputs.EvalFiles.Concat(stores.Select(s => Path.Combine(Path.GetDirectoryName(s.StorePath)!, "eval.json")).Where(File.Exists)).Distinct();
            foreach (var file in evalFiles) AttachEval(stores, file);
            var matches = inputs.MatchDirs.Select((dir, i) => new MatchOutput(i, dir)).ToArray();
            return new ServeCatalog(stores, matches);
        }
        catch
        {
            foreach (var s in stores) s.Dispose();
            throw;
        }
    }

    /// <summary>The live model of a store: --model, else the model the analysis ran, with the store's SAE; a reason when either is missing.</summary>
    private static void AttachLive(ServedStore store, string? modelOverride, Compute compute)
    {
        var s = store.Summary;
        string? model = modelOverride ?? s.ModelPath;
        if (model is null) { store.LiveUnavailable = "the analysis names no model; give --model to search and steer"; return; }
        if (!File.Exists(model) && !Directory.Exists(model)) { store.LiveUnavailable = $"the model '{model}' is not there; give --model"; return; }
        if (!Directory.Exists(s.SaePath)) { store.LiveUnavailable = $"the SAE folder '{s.SaePath}' the analysis read is not there"; return; }
        string? hook = (s.Settings["hook_name"] as JsonValue)?.TryGetValue(out string? h) == true ? h : null;
        try { store.Live = new LiveModel(model, s.SaePath, hook, compute); }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException)
        {
            store.LiveUnavailable = $"no tokenizer for '{model}': {e.Message}";
        }
    }

    /// <summary>The metric groups of every SAE in <paramref name="file"/> (eval.json) whose path is a served store's SAE.</summary>
    private static void AttachEval(IReadOnlyList<ServedStore> stores, string file)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"--eval {file}: no such file", file);
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new InvalidDataException($"{file}: expected a JSON object"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{file}: not valid JSON: {e.Message}"); }
        if (root["saes"] is not JsonArray saes) throw new InvalidDataException($"{file}: no 'saes' list (not an eval.json of saesharp eval)");
        foreach (var entry in saes.OfType<JsonObject>())
        {
            string? path = (entry["path"] as JsonValue)?.TryGetValue(out string? p) == true ? p : null;
            if (path is null || entry["metrics"] is not JsonObject metrics) continue;
            foreach (var store in stores.Where(st => SamePath(st.Summary.SaePath, path)))
            {
                store.EvalMetrics = (JsonObject)metrics.DeepClone();
                store.EvalFile = Path.GetFullPath(file);
            }
        }
    }

    public static bool SamePath(string a, string b) =>
        a.Length > 0 && b.Length > 0 && string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(b)), StringComparison.Ordinal);

    /// <summary>The served store whose SAE is <paramref name="saePath"/>, if any.</summary>
    public ServedStore? StoreOf(string saePath) => Stores.FirstOrDefault(s => SamePath(s.Summary.SaePath, saePath));

    /// <summary>The matches whose reference SAE is <paramref name="store"/>'s.</summary>
    public IEnumerable<MatchOutput> MatchesFrom(ServedStore store) => Matches.Where(m => SamePath(m.Reference.Path, store.Summary.SaePath));

    public void Dispose()
    {
        foreach (var s in Stores) s.Dispose();
    }
}
