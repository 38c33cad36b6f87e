using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Data;

/// <summary>One finished shard as listed in manifest.json.</summary>
public sealed record CacheShard(string File, int Rows, int FirstContext, int Contexts);

/// <summary>
/// manifest.json of an activation cache: the shards finished so far, the settings the cache was made with (model,
/// hook, dataset, context windows, dtype, token target; a rerun with others refuses), how many shards it plans, and
/// whether it is complete. A paired cache (a transcoder's training data) also holds <see cref="HookOut"/>'s
/// activations at the same positions.
/// </summary>
public sealed record CacheManifest(string Hook, int DIn, string DType, int ContextsPerShard, List<CacheShard> Shards)
{
    /// <summary>The target hook of a paired cache (each shard's <c>acts_out</c>, row for row with <c>acts</c>); null for a plain one.</summary>
    public string? HookOut { get; init; }
    /// <summary>Width of <see cref="HookOut"/>'s activations (0 without).</summary>
    public int DOut { get; init; }
    public JsonObject Settings { get; init; } = [];
    public int TotalShards { get; set; }
    public bool Complete { get; set; }
}

/// <summary>
/// Writes model activations at a hook to sharded safetensors files (<c>acts</c> [n, d_in] as F32 or BF16,
/// <c>tokens</c> [n] I32, and for a paired cache <c>acts_out</c> [n, d_out] from the target hook of the same forward).
/// The manifest is rewritten atomically after each shard, so an interrupted run resumes by skipping the shards it lists.
/// </summary>
public static class ActivationCache
{
    public const string ManifestName = "manifest.json";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>
    /// The manifest of the cache in <paramref name="dir"/>, or null when there is none. Every shard file it lists must
    /// be a plain file name inside the folder (a manifest that points elsewhere is refused).
    /// </summary>
    public static CacheManifest? ReadManifest(string dir)
    {
        var p = Path.Combine(dir, ManifestName);
        if (!File.Exists(p)) return null;
        CacheManifest m;
        try { m = JsonSerializer.Deserialize<CacheManifest>(File.ReadAllText(p), Json) ?? throw new InvalidDataException($"{p}: empty manifest"); }
        catch (JsonException e) { throw new InvalidDataException($"{p}: invalid manifest: {e.Message}", e); }
        if (m.Shards is null) throw new InvalidDataException($"{p}: no 'shards' list");
        foreach (var s in m.Shards)
        {
            if (string.IsNullOrEmpty(s.File) || Path.GetFileName(s.File) != s.File || s.File is "." or ".." || Path.IsPathRooted(s.File))
                throw new InvalidDataException($"{p}: shard file '{s.File}' is not a file name inside the cache folder");
            if (s.Rows < 0) throw new InvalidDataException($"{p}: shard {s.File} has a negative row count {s.Rows}");
        }
        return m;
    }

    /// <summary>
    /// Writes the cache, skipping shards a previous run finished; <paramref name="maxShards"/> stops early (used to test
    /// resume) and <paramref name="cancel"/> stops between model batches, dropping the shard in progress (the manifest
    /// then lists the finished shards, and a rerun with the same settings resumes from them).
    /// <paramref name="settings"/> records what the cache was made with; a folder holding a cache made with other
    /// settings is refused, listing the differences. Returns the manifest (<see cref="CacheManifest.Complete"/> when
    /// every shard is written). <paramref name="hookOut"/> makes a paired cache: that hook's activations at every
    /// cached position, from the same forward.
    /// </summary>
    public static CacheManifest Write(string dir, HookedTransformer model, string hook, IReadOnlyList<int[]> contexts,
        int contextsPerShard, int promptsPerBatch, DType dtype = DType.F32, IEnumerable<int>? excludeTokens = null, int? maxShards = null,
        JsonObject? settings = null, CancellationToken cancel = default, string? hookOut = null)
    {
        if (dtype is not (DType.F32 or DType.BF16)) throw new ArgumentException($"cache dtype must be F32 or BF16, got {dtype}");
        if (contextsPerShard < 1 || promptsPerBatch < 1) throw new ArgumentException("contexts per shard and prompts per batch must be >= 1");
        Directory.CreateDirectory(dir);
        int dIn = ActivationStore.Width(model, hook);
        int dOut = hookOut is null ? 0 : ActivationStore.Width(model, hookOut);
        var recorded = (JsonObject)(settings ?? []).DeepClone();
        recorded["hook"] = hook;
        recorded["d_in"] = dIn;
        if (hookOut is not null)
        {
            recorded["hook_out"] = hookOut;
            recorded["d_out"] = dOut;
        }
        recorded["dtype"] = dtype.Name();
        recorded["contexts_per_shard"] = contextsPerShard;
        var manifest = ReadManifest(dir);
        if (manifest is not null)
        {
            var differences = recorded.Select(kv => kv.Key).Union(manifest.Settings.Select(kv => kv.Key)).Order(StringComparer.Ordinal)
                .Where(k => (manifest.Settings[k]?.ToJsonString() ?? "null") != (recorded[k]?.ToJsonString() ?? "null"))
                .Select(k => $"{k}: {manifest.Settings[k]?.ToJsonString() ?? "null"} → {recorded[k]?.ToJsonString() ?? "null"}").ToList();
            if (differences.Count > 0)
                throw new InvalidOperationException($"{dir} holds a cache made with other settings; write to another folder or delete it. Differences: {string.Join("; ", differences)}");
        }
        manifest ??= new CacheManifest(hook, dIn, dtype.Name(), contextsPerShard, new List<CacheShard>()) { HookOut = hookOut, DOut = dOut, Settings = recorded };
        string spec = hookOut is null ? hook : $"{hook},{hookOut}";
        var exclude = excludeTokens is null ? null : new HashSet<int>(excludeTokens);
        int nShards = (contexts.Count + contextsPerShard - 1) / contextsPerShard;
        manifest.TotalShards = nShards;
        int written = 0;
        for (int s = 0; s < nShards; s++)
        {
            string name = $"shard_{s:D5}.safetensors";
            if (manifest.Shards.Any(x => x.File == name) && File.Exists(Path.Combine(dir, name))) continue;
            if (maxShards is int m && written >= m) break;
            if (cancel.IsCancellationRequested) break;
            int first = s * contextsPerShard, count = Math.Min(contextsPerShard, contexts.Count - first);
            var rows = new List<Tensor>(); var toks = new List<int>();
            bool stopped = false;
            for (int b = 0; b < count; b += promptsPerBatch)
            {
                // Between model batches: the shard in progress is dropped, the finished ones stay listed.
                if (cancel.IsCancellationRequested) { stopped = true; break; }
                var batch = new List<int[]>();
                for (int i = b; i < Math.Min(count, b + promptsPerBatch); i++) batch.Add(contexts[first + i]);
                var (r, t) = ActivationStore.Extract(model, spec, batch, exclude);
                rows.Add(r); toks.AddRange(t);
            }
            if (stopped) break;
            // Both hooks come from one Extract, so acts and acts_out are the same positions row for row.
            var acts = new Tensor(toks.Count, dIn);
            var actsOut = hookOut is null ? null : new Tensor(toks.Count, dOut);
            int at = 0;
            foreach (var r in rows)
                for (int i = 0; i < r.Rows; i++, at++)
                {
                    r.Row(i)[..dIn].CopyTo(acts.Row(at));
                    if (actsOut is not null) r.Row(i)[dIn..].CopyTo(actsOut.Row(at));
                }
            var writer = new SafetensorsWriter().AddMetadata("hook", hook).Add("acts", acts, dtype);
            if (actsOut is not null) writer.AddMetadata("hook_out", hookOut!).Add("acts_out", actsOut, dtype);
            writer.AddInt32("tokens", toks.ToArray(), toks.Count).Write(Path.Combine(dir, name));
            manifest.Shards.RemoveAll(x => x.File == name);
            manifest.Shards.Add(new CacheShard(name, toks.Count, first, count));
            manifest.Shards.Sort((a, b) => string.CompareOrdinal(a.File, b.File));
            AtomicFile.WriteAllText(Path.Combine(dir, ManifestName), JsonSerializer.Serialize(manifest, Json));
            written++;
        }
        manifest.Complete = Enumerable.Range(0, nShards).All(s => manifest.Shards.Any(x => x.File == $"shard_{s:D5}.safetensors"));
        AtomicFile.WriteAllText(Path.Combine(dir, ManifestName), JsonSerializer.Serialize(manifest, Json));
        return manifest;
    }

    /// <summary>Reads a shard's rows as F32, with token ids; <paramref name="expectedRows"/> (the manifest's count) is checked against the file.</summary>
    public static (Tensor Acts, int[] Tokens) ReadShard(string path, int dIn, int? expectedRows = null)
    {
        using var f = SafetensorsFile.Open(path);
        var e = f.Entry("acts");
        if (e.Shape.Length != 2 || e.Shape[1] != dIn) throw new InvalidDataException($"{path}: 'acts' has shape {e.ShapeString}, expected [n, {dIn}]");
        var acts = f.ReadFloat32("acts");
        var toks = f.ReadInt32("tokens");
        if (toks.Length != acts.Rows) throw new InvalidDataException($"{path}: 'tokens' has {toks.Length} entries, 'acts' has {acts.Rows} rows");
        if (expectedRows is int n && n != acts.Rows) throw new InvalidDataException($"{path}: holds {acts.Rows} rows, the cache's {ManifestName} says {n}");
        ActivationRows.EnsureFinite(acts, $"{path} ('acts')");
        return (acts, toks);
    }

    /// <summary>
    /// A shard's training rows: <c>acts</c>, and for a paired cache each row followed by its <c>acts_out</c> row
    /// ([n, d_in + d_out]), so the pairs travel together through the mixing buffer.
    /// </summary>
    public static Tensor ReadRows(string path, CacheManifest manifest, CacheShard shard)
    {
        var acts = ReadShard(path, manifest.DIn, shard.Rows).Acts;
        if (manifest.HookOut is null) return acts;
        using var f = SafetensorsFile.Open(path);
        if (!f.Contains("acts_out")) throw new InvalidDataException($"{path}: a paired cache's shard needs 'acts_out' (the {manifest.HookOut} activations)");
        var e = f.Entry("acts_out");
        if (e.Shape.Length != 2 || e.Shape[0] != acts.Rows || e.Shape[1] != manifest.DOut)
            throw new InvalidDataException($"{path}: 'acts_out' has shape {e.ShapeString}, expected [{acts.Rows}, {manifest.DOut}]");
        var outs = f.ReadFloat32("acts_out");
        var rows = Tensor.Uninitialized(acts.Rows, manifest.DIn + manifest.DOut);
        for (int r = 0; r < acts.Rows; r++)
        {
            acts.Row(r).CopyTo(rows.Row(r));
            outs.Row(r).CopyTo(rows.Row(r)[manifest.DIn..]);
        }
        return rows;
    }

    /// <summary>Where the hooks sit in the cache's training rows (<see cref="ReadRows"/>).</summary>
    public static HookLayout Layout(CacheManifest manifest) =>
        new(manifest.HookOut is null ? [(manifest.Hook, manifest.DIn)] : [(manifest.Hook, manifest.DIn), (manifest.HookOut, manifest.DOut)]);
}

/// <summary>
/// Training source over an activation cache: shards are visited in a seeded random order and their rows mixed
/// through a <see cref="MixingBuffer"/> so batches draw across shard boundaries. One pass. The rows of a paired
/// cache are its input then its target activations (<see cref="ActivationCache.ReadRows"/>).
/// </summary>
public sealed class CachedActivationSource : IActivationSource
{
    private readonly MixingBuffer _buffer;

    /// <param name="allowPartial">Train on a cache whose writing was interrupted (its finished shards only); otherwise such a cache is refused.</param>
    public CachedActivationSource(string dir, ulong seed, int bufferRows = 65536, bool allowPartial = false)
    {
        var manifest = ActivationCache.ReadManifest(dir) ?? throw new FileNotFoundException($"'{dir}' has no {ActivationCache.ManifestName}");
        if (manifest.Shards.Count == 0) throw new InvalidDataException($"{Path.Combine(dir, ActivationCache.ManifestName)} lists no shards");
        if (!manifest.Complete && !allowPartial)
            throw new InvalidDataException($"{dir} is a partial cache ({manifest.Shards.Count} of {manifest.TotalShards} shards written); finish it by rerunning `saesharp cache` with the same settings, or train on what is there with --allow-partial-cache");
        Dim = manifest.DIn + manifest.DOut;
        Layout = ActivationCache.Layout(manifest);
        var rng = new Rng(seed);
        var order = rng.Permutation(manifest.Shards.Count);
        int next = 0;
        _buffer = new MixingBuffer(Dim, bufferRows, () =>
        {
            if (next == order.Length) return null;
            var shard = manifest.Shards[order[next++]];
            return ActivationCache.ReadRows(Path.Combine(dir, shard.File), manifest, shard);
        }, rng.NextUInt64());
    }

    public int Dim { get; }
    /// <summary>Where the cache's hooks sit in the rows.</summary>
    public HookLayout Layout { get; }
    public bool Next(Tensor batch) => _buffer.Next(batch);
    public IReadOnlyDictionary<string, string> Position => _buffer.Position;
    public void Restore(IReadOnlyDictionary<string, string> position) => _buffer.Restore(position);
}
