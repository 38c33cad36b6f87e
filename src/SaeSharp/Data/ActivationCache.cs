using System.Globalization;
using System.Text.Json;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Data;

/// <summary>One finished shard as listed in manifest.json.</summary>
public sealed record CacheShard(string File, int Rows, int FirstContext, int Contexts);

/// <summary>manifest.json of an activation cache: the shards finished so far.</summary>
public sealed record CacheManifest(string Hook, int DIn, string DType, int ContextsPerShard, List<CacheShard> Shards);

/// <summary>
/// Writes model activations at a hook to sharded safetensors files (<c>acts</c> [n, d_in] as F32 or BF16,
/// <c>tokens</c> [n] I32). The manifest is rewritten atomically after each shard, so an interrupted run resumes
/// by skipping the shards it lists.
/// </summary>
public static class ActivationCache
{
    public const string ManifestName = "manifest.json";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static CacheManifest? ReadManifest(string dir)
    {
        var p = Path.Combine(dir, ManifestName);
        if (!File.Exists(p)) return null;
        try { return JsonSerializer.Deserialize<CacheManifest>(File.ReadAllText(p), Json) ?? throw new InvalidDataException($"{p}: empty manifest"); }
        catch (JsonException e) { throw new InvalidDataException($"{p}: invalid manifest: {e.Message}", e); }
    }

    /// <summary>
    /// Writes the cache; <paramref name="maxShards"/> stops early (used to test resume). Returns the manifest.
    /// When <paramref name="cancel"/> fires, the shard in progress is dropped and OperationCanceledException says how
    /// many shards are kept (a rerun resumes from them).
    /// </summary>
    public static CacheManifest Write(string dir, HookedTransformer model, string hook, IReadOnlyList<int[]> contexts,
        int contextsPerShard, int promptsPerBatch, DType dtype = DType.F32, IEnumerable<int>? excludeTokens = null, int? maxShards = null,
        CancellationToken cancel = default)
    {
        if (dtype is not (DType.F32 or DType.BF16)) throw new ArgumentException($"cache dtype must be F32 or BF16, got {dtype}");
        if (contextsPerShard < 1 || promptsPerBatch < 1) throw new ArgumentException("contexts per shard and prompts per batch must be >= 1");
        Directory.CreateDirectory(dir);
        int dIn = ActivationStore.Width(model, hook);
        var manifest = ReadManifest(dir);
        if (manifest is not null && (manifest.Hook != hook || manifest.DIn != dIn || manifest.DType != dtype.Name() || manifest.ContextsPerShard != contextsPerShard))
            throw new InvalidDataException($"{Path.Combine(dir, ManifestName)}: existing cache was made with different settings (hook {manifest.Hook}, d_in {manifest.DIn}, dtype {manifest.DType}, {manifest.ContextsPerShard} contexts/shard)");
        manifest ??= new CacheManifest(hook, dIn, dtype.Name(), contextsPerShard, new List<CacheShard>());
        var exclude = excludeTokens is null ? null : new HashSet<int>(excludeTokens);
        int nShards = (contexts.Count + contextsPerShard - 1) / contextsPerShard;
        int written = 0;
        for (int s = 0; s < nShards; s++)
        {
            string name = $"shard_{s:D5}.safetensors";
            if (manifest.Shards.Any(x => x.File == name) && File.Exists(Path.Combine(dir, name))) continue;
            if (maxShards is int m && written >= m) break;
            int first = s * contextsPerShard, count = Math.Min(contextsPerShard, contexts.Count - first);
            var rows = new List<Tensor>(); var toks = new List<int>();
            for (int b = 0; b < count; b += promptsPerBatch)
            {
                if (cancel.IsCancellationRequested)
                    throw new OperationCanceledException($"cache stopped with {manifest.Shards.Count} of {nShards} shards finished; they are kept in {dir} "
                        + "(manifest.json lists them) and a rerun with the same settings resumes from them", cancel);
                var batch = new List<int[]>();
                for (int i = b; i < Math.Min(count, b + promptsPerBatch); i++) batch.Add(contexts[first + i]);
                var (r, t) = ActivationStore.Extract(model, hook, batch, exclude);
                rows.Add(r); toks.AddRange(t);
            }
            var acts = new Tensor(toks.Count, dIn);
            int at = 0;
            foreach (var r in rows) { r.Span.CopyTo(acts.Span.Slice(at * dIn)); at += r.Rows; }
            new SafetensorsWriter()
                .AddMetadata("hook", hook)
                .Add("acts", acts, dtype)
                .AddInt32("tokens", toks.ToArray(), toks.Count)
                .Write(Path.Combine(dir, name));
            manifest.Shards.RemoveAll(x => x.File == name);
            manifest.Shards.Add(new CacheShard(name, toks.Count, first, count));
            manifest.Shards.Sort((a, b) => string.CompareOrdinal(a.File, b.File));
            AtomicFile.WriteAllText(Path.Combine(dir, ManifestName), JsonSerializer.Serialize(manifest, Json));
            written++;
        }
        return manifest;
    }

    /// <summary>Reads every row of a cache (shard order) as F32, with token ids.</summary>
    public static (Tensor Acts, int[] Tokens) ReadShard(string path, int dIn)
    {
        using var f = SafetensorsFile.Open(path);
        var e = f.Entry("acts");
        if (e.Shape.Length != 2 || e.Shape[1] != dIn) throw new InvalidDataException($"{path}: 'acts' has shape {e.ShapeString}, expected [n, {dIn}]");
        var acts = f.ReadFloat32("acts");
        var toks = f.ReadInt32("tokens");
        if (toks.Length != acts.Rows) throw new InvalidDataException($"{path}: 'tokens' has {toks.Length} entries, 'acts' has {acts.Rows} rows");
        ActivationRows.EnsureFinite(acts, $"{path} ('acts')");
        return (acts, toks);
    }
}

/// <summary>
/// Training source over an activation cache: shards are visited in a seeded random order and their rows mixed
/// through a <see cref="MixingBuffer"/> so batches draw across shard boundaries. One pass.
/// </summary>
public sealed class CachedActivationSource : IActivationSource
{
    private readonly MixingBuffer _buffer;

    public CachedActivationSource(string dir, ulong seed, int bufferRows = 65536)
    {
        var manifest = ActivationCache.ReadManifest(dir) ?? throw new FileNotFoundException($"'{dir}' has no {ActivationCache.ManifestName}");
        if (manifest.Shards.Count == 0) throw new InvalidDataException($"{Path.Combine(dir, ActivationCache.ManifestName)} lists no shards");
        Dim = manifest.DIn;
        var rng = new Rng(seed);
        var order = rng.Permutation(manifest.Shards.Count);
        int next = 0;
        _buffer = new MixingBuffer(Dim, bufferRows, () =>
        {
            if (next == order.Length) return null;
            var shard = manifest.Shards[order[next++]];
            return ActivationCache.ReadShard(Path.Combine(dir, shard.File), Dim).Acts;
        }, rng.NextUInt64());
    }

    public int Dim { get; }
    public bool Next(Tensor batch) => _buffer.Next(batch);
    public IReadOnlyDictionary<string, string> Position => _buffer.Position;
    public void Restore(IReadOnlyDictionary<string, string> position) => _buffer.Restore(position);
}
