using SaeSharp.Tensors;

namespace SaeSharp.Tests.Tensors;

public class TopKTests
{
    // Reference: stable sort of (value desc, index asc).
    private static (float V, int I)[] ReferenceTop(ReadOnlySpan<float> row, int k) =>
        row.ToArray().Select((v, i) => (V: v, I: i)).OrderByDescending(t => t.V).ThenBy(t => t.I).Take(k).ToArray();

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 17, 1)]
    [InlineData(5, 31, 31)]
    [InlineData(4, 65, 7)]
    [InlineData(7, 130, 33)]
    [InlineData(2, 1000, 32)]
    public void RowsMatchSortedReference(int rows, int cols, int k)
    {
        var rng = new Rng((ulong)(rows * 31 + cols + k));
        var x = new Tensor(rows, cols);
        // Coarse values force many ties.
        for (int i = 0; i < x.Length; i++) x[i] = rng.NextInt(9) - 4;
        var codes = TopK.Rows(x, k, relu: false, Compute.Single);
        for (int r = 0; r < rows; r++)
        {
            var expected = ReferenceTop(x.Row(r), k);
            Assert.Equal(expected.Select(e => e.I).ToArray(), codes.RowIndex(r).ToArray());
            Assert.Equal(expected.Select(e => e.V).ToArray(), codes.RowValue(r).ToArray());
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(17, 5)]
    [InlineData(33, 33)]
    [InlineData(2341, 256)]
    [InlineData(100, 99)]
    public void SelectRowByIndexPicksTheSameEntriesAsTheHeap(int n, int k)
    {
        var rng = new Rng((ulong)(n * 31 + k));
        for (int trial = 0; trial < 20; trial++)
        {
            // Few distinct values (many ties), negatives and zeros of both signs.
            var row = Enumerable.Range(0, n).Select(_ => trial % 2 == 0 ? (float)rng.NextInt(7) - 3 : (float)rng.NextDouble() - 0.5f).ToArray();
            var hv = new float[k]; var hi = new int[k];
            TopK.SelectRow(row, k, hv, hi);
            var qv = new float[k]; var qi = new int[k];
            TopK.SelectRowByIndex(row, k, qv, qi, new ulong[n]);
            Assert.Equal(hi.OrderBy(i => i), qi);
            Assert.Equal(qi.Select(i => row[i]), qv);
        }
    }

    [Fact]
    public void ReluClampsSelectedValuesButKeepsK()
    {
        var x = Tensor.FromArray(new float[] { -3, -1, 2, -2 }, 1, 4);
        var codes = TopK.Rows(x, 3, relu: true, Compute.All);
        Assert.Equal(new[] { 2, 1, 3 }, codes.RowIndex(0).ToArray());
        Assert.Equal(new float[] { 2, 0, 0 }, codes.RowValue(0).ToArray());
    }

    [Fact]
    public void KOutOfRangeIsRejected()
    {
        var x = new Tensor(2, 5);
        Assert.Throws<ArgumentOutOfRangeException>(() => TopK.Rows(x, 0, relu: false, Compute.All));
        Assert.Throws<ArgumentOutOfRangeException>(() => TopK.Rows(x, 6, relu: false, Compute.All));
    }

    [Theory]
    [InlineData(3, 17, 5)]
    [InlineData(8, 65, 40)]
    [InlineData(5, 31, 1)]
    [InlineData(4, 10, 1000)] // more than the positives: keeps every positive value
    public void BatchKeepsTheLargestPositiveValues(int rows, int cols, int total)
    {
        var rng = new Rng((ulong)(rows + cols * 7 + total));
        var x = new Tensor(rows, cols);
        for (int i = 0; i < x.Length; i++) x[i] = (rng.NextInt(21) - 8) * 0.25f; // ties and negatives
        var (codes, minKept) = TopK.Batch(x, total, new Compute(2));
        var flat = x.ToArray().Select((v, i) => (V: v, I: i)).Where(t => t.V > 0).OrderByDescending(t => t.V).ThenBy(t => t.I).Take(total).ToList();
        var expected = new Tensor(rows, cols);
        foreach (var (v, i) in flat) expected[i] = v;
        Assert.Equal(expected.ToArray(), codes.ToDense().ToArray());
        Assert.Equal(flat.Count, codes.Count);
        Assert.Equal(flat.Count == 0 ? 0 : flat[^1].V, minKept);
        for (int r = 0; r < rows; r++)
        {
            var idx = codes.RowIndex(r).ToArray();
            Assert.Equal(idx.OrderBy(i => i).ToArray(), idx); // ascending within a row
        }
    }

    [Theory]
    [InlineData(64, 8191, 2048, 1)]   // large enough for the sampled-threshold path
    [InlineData(64, 8191, 2048, 256)] // heavy ties at the threshold
    [InlineData(40, 9000, 100000, 64)] // estimate too low to matter: many candidates
    public void BatchLargeMatchesReference(int rows, int cols, int total, int levels)
    {
        var rng = new Rng((ulong)(rows + cols + total + levels));
        var x = new Tensor(rows, cols);
        for (int i = 0; i < x.Length; i++) x[i] = levels == 1 ? (float)rng.Normal() : (rng.NextInt(2 * levels) - levels) / (float)levels;
        var (codes, minKept) = TopK.Batch(x, total, new Compute(2));
        var flat = x.ToArray().Select((v, i) => (V: v, I: i)).Where(t => t.V > 0).OrderByDescending(t => t.V).ThenBy(t => t.I).Take(total).ToList();
        Assert.Equal(flat.Count, codes.Count);
        Assert.Equal(flat[^1].V, minKept);
        var got = new HashSet<int>();
        for (int r = 0; r < rows; r++)
            foreach (int j in codes.RowIndex(r)) got.Add(r * cols + j);
        Assert.True(got.SetEquals(flat.Select(f => f.I)));
    }

    [Fact]
    public void BatchIgnoresNaNAndNonPositive()
    {
        var x = Tensor.FromArray(new[] { float.NaN, 0f, -1f, 3f, float.PositiveInfinity, 1f }, 2, 3);
        var (codes, min) = TopK.Batch(x, 2, compute: Compute.All);
        Assert.Equal(new[] { 0, 1 }, codes.Index.Take(codes.Count).ToArray());
        Assert.Equal(new[] { 3f, float.PositiveInfinity }, codes.Value.Take(codes.Count).ToArray());
        Assert.Equal(3f, min);
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void SelectRowMatchesTheReferenceAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(43);
        foreach (int n in SimdPaths.AwkwardLengths)
            foreach (int k in new[] { 1, Math.Min(5, n), n })
            {
                // Ties (coarse values), zeros of both signs and infinities; NaN has no place in a top-k.
                var row = SimdPaths.Values(n, rng, 0.3).Select(v => float.IsNaN(v) ? 0.25f : MathF.Round(v * 2) / 2).ToArray();
                var values = new float[k]; var indices = new int[k];
                TopK.SelectRow(row, k, values, indices, w);
                var expected = ReferenceTop(row, k);
                Assert.Equal(expected.Select(e => e.I).ToArray(), indices);
                Assert.Equal(expected.Select(e => e.V).ToArray(), values);
            }
    }

    /// <summary>
    /// Rows at least 16·k long go through the cut from the k group maxima: the same entries as the reference at
    /// every width, for awkward lengths and k (the last group longer), with ties at the cut (coarse values), a
    /// row whose largest values all sit in one group, and NaNs filling whole groups (fewer entries than k at or
    /// above the cut would leave the plain heap to decide; here enough remain).
    /// </summary>
    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void LongRowsSelectThroughTheGroupCutAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(45);
        foreach (var (n, k) in new[] { (16, 1), (1000, 3), (1237, 40), (16384, 32), (5003, 311) })
        {
            var normal = new float[n]; rng.FillNormal(normal);
            var coarse = normal.Select(v => MathF.Round(v * 2) / 2).ToArray();
            var oneGroup = normal.Select((v, i) => i < n / k ? v + 100 : v).ToArray();
            foreach (var row in new[] { normal, coarse, oneGroup })
            {
                var values = new float[k]; var indices = new int[k];
                TopK.SelectRow(row, k, values, indices, w);
                var expected = ReferenceTop(row, k);
                Assert.Equal(expected.Select(e => e.I).ToArray(), indices);
                Assert.Equal(expected.Select(e => e.V).ToArray(), values);
            }
        }
        var withNaN = new float[2000]; rng.FillNormal(withNaN);
        for (int i = 0; i < 200; i++) withNaN[i] = float.NaN; // the first two of ten groups
        var v10 = new float[10]; var i10 = new int[10];
        TopK.SelectRow(withNaN, 10, v10, i10, w);
        var finite = withNaN.Select((v, i) => (V: v, I: i)).Where(t => !float.IsNaN(t.V)).OrderByDescending(t => t.V).ThenBy(t => t.I).Take(10);
        Assert.Equal(finite.Select(t => t.I).ToArray(), i10);
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void CollectAboveFindsEveryLargerValueInOrderAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(44);
        foreach (int n in SimdPaths.AwkwardLengths)
        {
            var row = SimdPaths.Values(n, rng);
            var found = new List<long> { -7 }; // appends after what is there
            TopK.CollectAbove(row, 0.5f, 1000, found, w);
            var expected = new List<long> { -7 };
            for (int j = 0; j < n; j++) if (row[j] > 0.5f) expected.Add(1000 + j);
            Assert.Equal(expected, found);
        }
    }
}
