using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Tensors;
using Xunit;

namespace SaeSharp.Tests.Data;

public class ActivationCacheTests
{
    private const string Hook = "blocks.0.hook_resid_post";
    private static string Tmp() { var d = Path.Combine(Path.GetTempPath(), "saesharp-cache-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(d); return d; }

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
        static string Key(float[] r) => string.Join(",", r.Select(v => BitConverter.SingleToInt32Bits(v)));
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
        var e = Assert.Throws<InvalidDataException>(() => ActivationCache.Write(d, model, Hook, ctx, 2, 2, DType.F32));
        Assert.Contains("manifest.json", e.Message);
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
        var model = SaeSharp.Models.HookedTransformer.Load(modelDir);
        var ctx = Enumerable.Range(0, 6).Select(i => Enumerable.Range(0, 8).Select(j => 1 + (i * 8 + j) % 15).ToArray()).ToList();
        ActivationCache.Write(d, model, Hook, ctx, 2, 2, maxShards: 1);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var e = Assert.Throws<OperationCanceledException>(() => ActivationCache.Write(d, model, Hook, ctx, 2, 2, cancel: cancelled.Token));
        Assert.Contains("1 of 3 shards", e.Message);
        Assert.Contains(d, e.Message);
        Assert.Contains("resumes", e.Message);
        Assert.Single(ActivationCache.ReadManifest(d)!.Shards);
        Assert.Equal(3, ActivationCache.Write(d, model, Hook, ctx, 2, 2).Shards.Count);
    }
}
