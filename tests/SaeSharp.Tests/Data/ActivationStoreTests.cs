using SaeSharp.Data;
using SaeSharp.Models;
using SaeSharp.Tensors;
using Xunit;

namespace SaeSharp.Tests.Data;

public class ActivationStoreTests
{
    internal const string Model = "models/stories260K/model.safetensors";
    internal static HookedTransformer LoadModel() => HookedTransformer.Load(System.IO.Path.GetDirectoryName(SharedData.Path(Model))!, Compute.All);

    internal static List<int[]> Contexts(int n, int len)
    {
        var rng = new Rng(5);
        var list = new List<int[]>();
        for (int i = 0; i < n; i++) { var c = new int[len]; c[0] = 1; for (int j = 1; j < len; j++) c[j] = 3 + rng.NextInt(500); list.Add(c); }
        return list;
    }

    private static List<float[]> Sorted(IEnumerable<float[]> rows) =>
        rows.OrderBy(r => r[0]).ThenBy(r => r[1]).ThenBy(r => r[2]).ToList();

    /// <summary>
    /// A transcoder's rows (blocks.1.ln2.hook_normalized, then blocks.1.hook_mlp_out) stay paired through the mixing
    /// buffer and across a kill/resume: every row the store serves is one position's input and its own target, as an
    /// unshuffled extract of the same model batches gives them, the rows are shuffled, and a store restored at a saved
    /// position serves exactly the rows the uninterrupted store serves after it.
    /// </summary>
    [SharedFact(Model)]
    public void TranscoderPairsStayPairedThroughTheMixingBufferAndAcrossAResume()
    {
        var model = LoadModel();
        const string spec = "blocks.1.ln2.hook_normalized,blocks.1.hook_mlp_out";
        int d = model.Config.DModel;
        var ctx = Contexts(12, 16);
        // The target of each input, from the store's own model batches (3 windows each), in order.
        var targetOf = new Dictionary<string, float[]>();
        var extractOrder = new List<string>();
        for (int b = 0; b < ctx.Count; b += 3)
        {
            var (rows, _) = ActivationStore.Extract(model, spec, ctx.Skip(b).Take(3).ToList());
            for (int r = 0; r < rows.Rows; r++)
            {
                // Every window's BOS position has the same input (and so the same target); all others differ.
                string key = Key(rows.Row(r)[..d]);
                if (targetOf.TryGetValue(key, out var seen)) Assert.Equal(seen, rows.Row(r)[d..].ToArray());
                targetOf[key] = rows.Row(r)[d..].ToArray();
                extractOrder.Add(key);
            }
        }
        ActivationStore Store() => new(model, spec, ctx, 16, storeBatchSizePrompts: 3, nBatchesInBuffer: 2, seed: 9);
        List<float[]> Drain(ActivationStore store, int? batches = null)
        {
            var got = new List<float[]>();
            var t = new Tensor(24, store.Dim);
            for (int i = 0; (batches is null || i < batches) && store.Next(t); i++)
                for (int r = 0; r < t.Rows; r++) got.Add(t.Row(r).ToArray());
            return got;
        }
        var straight = Drain(Store());
        Assert.Equal(2 * d, Store().Dim);
        Assert.Equal(ctx.Count * 16 / 24 * 24, straight.Count);
        Assert.True(targetOf.Count > straight.Count - ctx.Count, "the inputs must tell the positions apart");
        foreach (var row in straight) Assert.Equal(targetOf[Key(row.AsSpan(0, d))], row[d..]);
        Assert.NotEqual(extractOrder.Take(straight.Count), straight.Select(r => Key(r.AsSpan(0, d))));

        var killed = Store();
        var before = Drain(killed, batches: 3);
        var resumed = Store();
        resumed.Restore(killed.Position);
        var after = Drain(resumed);
        Assert.Equal(straight.Count, before.Count + after.Count);
        for (int i = 0; i < after.Count; i++) Assert.Equal(straight[before.Count + i], after[i]);
    }

    private static string Key(ReadOnlySpan<float> row) => Convert.ToHexString(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row));

    [SharedFact(Model)]
    public void StreamsEveryNonSpecialPositionOfTheHook()
    {
        var model = LoadModel();
        const string hook = "blocks.1.hook_resid_pre";
        var ctx = Contexts(4, 6);
        var store = new ActivationStore(model, hook, ctx, 6, storeBatchSizePrompts: 2, nBatchesInBuffer: 2, seed: 1, excludeTokens: new[] { 1 });
        Assert.Equal(model.Config.DModel, store.Dim);
        var got = new List<float[]>();
        var t = new Tensor(4, store.Dim);
        while (store.Next(t)) for (int i = 0; i < 4; i++) got.Add(t.Row(i).ToArray());
        Assert.Equal(20, got.Count); // 4 windows x 5 non-BOS positions

        var expected = new List<float[]>();
        foreach (var c in ctx)
        {
            var a = model.RunWithCache(c, new[] { hook }, returnLogits: false).Cache[hook];
            for (int p = 1; p < c.Length; p++) expected.Add(a.Row(p).ToArray());
        }
        var g = Sorted(got); var e = Sorted(expected);
        for (int i = 0; i < e.Count; i++)
            for (int j = 0; j < e[i].Length; j++) Assert.Equal(e[i][j], g[i][j], 1e-4f); // absolute: decimal-place rounding flips at a boundary
    }

    [SharedFact(Model)]
    public void SeqposSliceAndHeadIndexKeepThoseRowsAndThatHead()
    {
        var model = LoadModel();
        const string hook = "blocks.0.attn.hook_z";
        var ctx = Contexts(3, 7);
        var select = new HookSelection(SeqPosStart: 2, SeqPosEnd: -1, HeadIndex: 1);
        int dHead = model.Config.DHead;
        Assert.Equal(dHead, ActivationStore.Width(model, hook, select));
        var (rows, tokens) = ActivationStore.Extract(model, hook, ctx, select: select);
        Assert.Equal(3 * 4, rows.Rows); // positions 2..5 of each window of 7
        Assert.Equal(dHead, rows.Cols);
        int r = 0;
        foreach (var c in ctx)
        {
            var z = model.RunWithCache(c, new[] { hook }, returnLogits: false).Cache[hook]; // [pos, head, d_head]
            for (int p = 2; p < 6; p++, r++)
            {
                Assert.Equal(c[p], tokens[r]);
                for (int j = 0; j < dHead; j++) Assert.Equal(z.Span[(p * model.Config.NHeads + 1) * dHead + j], rows[r, j], 4);
            }
        }
        Assert.Throws<ArgumentException>(() => ActivationStore.Width(model, "blocks.0.hook_resid_post", select));
    }

    [SharedFact(Model)]
    public void SeveralHooksAreConcatenatedPerPosition()
    {
        var model = LoadModel();
        var ctx = Contexts(3, 6);
        var exclude = new HashSet<int> { 1 };
        const string spec = "blocks.1.hook_resid_post, blocks.0.mlp.hook_post";
        var (both, tokens) = ActivationStore.Extract(model, spec, ctx, exclude);
        var (first, t1) = ActivationStore.Extract(model, "blocks.1.hook_resid_post", ctx, exclude);
        var (second, _) = ActivationStore.Extract(model, "blocks.0.mlp.hook_post", ctx, exclude);
        Assert.Equal(t1, tokens);
        Assert.Equal(first.Cols + second.Cols, both.Cols);
        Assert.Equal(both.Cols, ActivationStore.Width(model, spec));
        for (int r = 0; r < both.Rows; r++)
        {
            Assert.Equal(first.Row(r).ToArray(), both.Row(r)[..first.Cols].ToArray());
            Assert.Equal(second.Row(r).ToArray(), both.Row(r)[first.Cols..].ToArray());
        }
        var store = new ActivationStore(model, spec, ctx, 6, storeBatchSizePrompts: 2, nBatchesInBuffer: 1, seed: 3, excludeTokens: exclude);
        Assert.Equal(both.Cols, store.Dim);
        Assert.Throws<ArgumentException>(() => new ActivationStore(model, "blocks.0.hook_resid_post,blocks.9.nope", ctx, 6, 2, 1, 3));
    }

    [Theory]
    [InlineData(null, null, 0, 5, true)]
    [InlineData(1, null, 0, 5, false)]
    [InlineData(1, 3, 2, 5, true)]
    [InlineData(1, 3, 3, 5, false)]
    [InlineData(-2, null, 3, 5, true)]
    [InlineData(-2, null, 2, 5, false)]
    [InlineData(null, -1, 4, 5, false)]
    [InlineData(-9, 99, 4, 5, true)]
    public void SeqposSliceFollowsPythonSlices(int? start, int? end, int position, int length, bool kept) =>
        Assert.Equal(kept, new HookSelection(start, end).Contains(position, length));

    [Fact]
    public void NormScalingFactorIsSqrtDOverMeanNorm()
    {
        var data = new Tensor(4, 4);
        for (int r = 0; r < 4; r++) data.Row(r).Fill(r < 2 ? 1f : 2f); // norms 2, 2, 4, 4 -> mean 3
        var src = new InMemoryActivationSource(data, seed: 1, shuffle: false, endless: false);
        Assert.Equal(2.0 / 3.0, ActivationStore.EstimateNormScalingFactor(src, 2, 2), 6);
    }
}
