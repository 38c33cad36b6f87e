using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Tensors;
using Xunit;

namespace SaeSharp.Tests.Data;

public class ActivationCacheTests
{
    private const string Hook = "blocks.0.hook_resid_post";
    private static string Tmp() { var d = Path.Combine(Path.GetTempPath(), "saesharp-cache-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(d); return d; }

    /// <summary>
    /// A paired cache (a transcoder's training data) holds the target hook's activations row for row with the input's,
    /// from one forward, and the training source serves them side by side, still paired after its shuffling.
    /// </summary>
    [SharedFact(ActivationStoreTests.Model)]
    public void PairedCacheKeepsEachTargetWithItsInput()
    {
        var model = ActivationStoreTests.LoadModel();
        var ctx = ActivationStoreTests.Contexts(4, 6);
        const string input = "blocks.1.ln2.hook_normalized", target = "blocks.1.hook_mlp_out";
        var dir = Tmp();
        var m = ActivationCache.Write(dir, model, input, ctx, contextsPerShard: 2, promptsPerBatch: 2, hookOut: target);
        Assert.Equal(target, m.HookOut);
        Assert.Equal(model.Config.DModel, m.DOut);
        Assert.Equal(target, ActivationCache.ReadManifest(dir)!.HookOut);
        var pairs = new Dictionary<string, float[]>();
        foreach (var s in m.Shards)
        {
            var rows = ActivationCache.ReadRows(Path.Combine(dir, s.File), m, s);
            var (ins, _) = ActivationStore.Extract(model, input, ctx.Skip(s.FirstContext).Take(s.Contexts).ToList());
            var (outs, _) = ActivationStore.Extract(model, target, ctx.Skip(s.FirstContext).Take(s.Contexts).ToList());
            for (int r = 0; r < rows.Rows; r++)
            {
                Assert.Equal(ins.Row(r).ToArray(), rows.Row(r)[..m.DIn].ToArray());
                Assert.Equal(outs.Row(r).ToArray(), rows.Row(r)[m.DIn..].ToArray());
                pairs[Key(rows.Row(r)[..m.DIn].ToArray())] = rows.Row(r)[m.DIn..].ToArray();
            }
        }
        var src = new CachedActivationSource(dir, seed: 4, bufferRows: 8);
        Assert.Equal(m.DIn + m.DOut, src.Dim);
        Assert.Equal([input, target], src.Layout.Hooks);
        var batch = new Tensor(4, src.Dim);
        int served = 0;
        while (src.Next(batch))
            for (int i = 0; i < 4; i++, served++)
                Assert.Equal(pairs[Key(batch.Row(i)[..m.DIn].ToArray())], batch.Row(i)[m.DIn..].ToArray());
        Assert.Equal(24, served);
        // The same folder with another target hook is another cache: refused, naming the difference.
        var e = Assert.Throws<InvalidOperationException>(() => ActivationCache.Write(dir, model, input, ctx, 2, 2, hookOut: "blocks.1.hook_resid_post"));
        Assert.Contains("hook_out", e.Message);
    }

    private static string Key(float[] r) => string.Join(",", r.Select(v => BitConverter.SingleToInt32Bits(v)));

    [SharedFact(ActivationStoreTests.Model)]
    public void RoundTripEqualsStreamedAndResumeMatches()
    {
        var model = ActivationStoreTests.LoadModel();
        var ctx = ActivationStoreTests.Contexts(5, 6);
        var full = Tmp();
        var m = ActivationCache.Write(full, model, Hook, ctx, contextsPerShard: 2, promptsPerBatch: 2);
        Assert.Equal(3, m.Shards.Count);

        // Streamed reference with the same batching: every row exactly, in shard order.
        var rows = new List<float[]>();
        var toks = new List<int>();
        foreach (var s in m.Shards)
        {
            var (a, t) = ActivationCache.ReadShard(Path.Combine(full, s.File), m.DIn);
            for (int i = 0; i < a.Rows; i++) rows.Add(a.Row(i).ToArray());
            toks.AddRange(t);
        }
        var refRows = new List<float[]>();
        for (int b = 0; b < ctx.Count; b += 2)
        {
            var (r, _) = ActivationStore.Extract(model, Hook, ctx.Skip(b).Take(2).ToList());
            for (int i = 0; i < r.Rows; i++) refRows.Add(r.Row(i).ToArray());
        }
        Assert.Equal(refRows.Count, rows.Count);
        for (int i = 0; i < rows.Count; i++) Assert.Equal(refRows[i], rows[i]);
        Assert.Equal(ctx.SelectMany(c => c), toks);

        // Partial run then resume gives byte-identical files.
        var part = Tmp();
        var pm = ActivationCache.Write(part, model, Hook, ctx, 2, 2, maxShards: 1);
        Assert.Single(pm.Shards);
        ActivationCache.Write(part, model, Hook, ctx, 2, 2);
        foreach (var f in Directory.GetFiles(full).Select(Path.GetFileName))
            Assert.Equal(File.ReadAllBytes(Path.Combine(full, f!)), File.ReadAllBytes(Path.Combine(part, f!)));

        // The shuffling reader yields every cached row once.
        var src = new CachedActivationSource(full, seed: 4, bufferRows: 8);
        var got = new List<float[]>();
        var batch = new Tensor(5, src.Dim);
        while (src.Next(batch)) for (int i = 0; i < 5; i++) got.Add(batch.Row(i).ToArray());
        Assert.Equal(30, got.Count);
        Assert.Equal(rows.Select(Key).OrderBy(k => k), got.Select(Key).OrderBy(k => k));
        Assert.NotEqual(rows.Select(Key), got.Select(Key));
    }

    [SharedFact(ActivationStoreTests.Model)]
    public void Bf16CacheAndSettingsMismatch()
    {
        var model = ActivationStoreTests.LoadModel();
        var ctx = ActivationStoreTests.Contexts(2, 4);
        var d = Tmp();
        var m = ActivationCache.Write(d, model, Hook, ctx, 2, 2, DType.BF16);
        using (var f = SafetensorsFile.Open(Path.Combine(d, m.Shards[0].File))) Assert.Equal(DType.BF16, f.Entry("acts").DType);
        Assert.True(m.Complete);
        var e = Assert.Throws<InvalidOperationException>(() => ActivationCache.Write(d, model, Hook, ctx, 2, 2, DType.F32));
        Assert.Contains(d, e.Message);
        Assert.Contains("dtype: \"BF16\" → \"F32\"", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => ActivationCache.Write(d, model, Hook, ctx, 2, 2, DType.BF16, settings: new() { ["dataset"] = "other.txt" }));
        Assert.Contains("dataset: null → \"other.txt\"", e.Message);
    }

    [SharedFact(ActivationStoreTests.Model)]
    public void PartialCacheIsRefusedForTrainingUnlessAllowed()
    {
        var model = ActivationStoreTests.LoadModel();
        var ctx = ActivationStoreTests.Contexts(6, 4);
        var d = Tmp();
        var m = ActivationCache.Write(d, model, Hook, ctx, 2, 2, maxShards: 1);
        Assert.False(m.Complete);
        Assert.Equal(3, m.TotalShards);
        var e = Assert.Throws<InvalidDataException>(() => new CachedActivationSource(d, 1));
        Assert.Contains("partial cache (1 of 3 shards", e.Message);
        Assert.Contains("--allow-partial-cache", e.Message);
        var partial = new CachedActivationSource(d, 1, allowPartial: true);
        var batch = new Tensor(4, partial.Dim);
        Assert.True(partial.Next(batch));
        // Finishing the cache with the same settings completes it.
        Assert.True(ActivationCache.Write(d, model, Hook, ctx, 2, 2).Complete);
        Assert.True(new CachedActivationSource(d, 1).Next(batch));
    }

    [SharedFact(ActivationStoreTests.Model)]
    public void ManifestMustNameFilesInsideTheCacheWithTheirRowCounts()
    {
        var model = ActivationStoreTests.LoadModel();
        var d = Tmp();
        ActivationCache.Write(d, model, Hook, ActivationStoreTests.Contexts(2, 4), 2, 2);
        string manifest = Path.Combine(d, ActivationCache.ManifestName);
        string good = File.ReadAllText(manifest);
        foreach (var bad in new[] { "../outside.safetensors", "/etc/passwd", "sub/shard.safetensors" })
        {
            File.WriteAllText(manifest, good.Replace("shard_00000.safetensors", bad));
            var e = Assert.Throws<InvalidDataException>(() => new CachedActivationSource(d, 1));
            Assert.Contains("not a file name inside the cache folder", e.Message);
        }
        File.WriteAllText(manifest, good.Replace("\"rows\": 8", "\"rows\": 9"));
        var src = new CachedActivationSource(d, 1);
        var err = Assert.Throws<InvalidDataException>(() => src.Next(new Tensor(4, src.Dim)));
        Assert.Contains("holds 8 rows, the cache's manifest.json says 9", err.Message);
    }

    [Fact]
    public void NonFiniteShardRowIsNamed()
    {
        var d = Tmp();
        var acts = new Tensor(5, 3);
        acts[4, 2] = float.NegativeInfinity;
        string shard = Path.Combine(d, "shard_00000.safetensors");
        new SafetensorsWriter().Add("acts", acts).AddInt32("tokens", new int[5], 5).Write(shard);
        var e = Assert.Throws<InvalidDataException>(() => ActivationCache.ReadShard(shard, 3));
        Assert.Contains(shard, e.Message);
        Assert.Contains("row 4", e.Message);
    }

    [Fact]
    public void InterruptedCacheKeepsItsFinishedShardsAndSaysSo()
    {
        var d = Tmp();
        var modelDir = Tmp();
        SaeSharp.Tests.Models.ModelLoaderTests.WriteTinyLlama(modelDir);
        var model = SaeSharp.Models.HookedTransformer.Load(modelDir, Compute.All);
        var ctx = Enumerable.Range(0, 6).Select(i => Enumerable.Range(0, 8).Select(j => 1 + (i * 8 + j) % 15).ToArray()).ToList();
        ActivationCache.Write(d, model, Hook, ctx, 2, 2, maxShards: 1);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var stopped = ActivationCache.Write(d, model, Hook, ctx, 2, 2, cancel: cancelled.Token);
        Assert.False(stopped.Complete);
        Assert.Equal((1, 3), (stopped.Shards.Count, stopped.TotalShards));
        Assert.Single(ActivationCache.ReadManifest(d)!.Shards);
        Assert.Equal(3, ActivationCache.Write(d, model, Hook, ctx, 2, 2).Shards.Count);
    }
}
