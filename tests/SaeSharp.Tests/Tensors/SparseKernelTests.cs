using SaeSharp.Tensors;

namespace SaeSharp.Tests.Tensors;

public class SparseKernelTests
{
    private static (SparseCodes Codes, Tensor W, Tensor Dense) Setup(int rows, int dSae, int d, int k, ulong seed)
    {
        var rng = new Rng(seed);
        var pre = new Tensor(rows, dSae);
        rng.FillNormal(pre.Span);
        var codes = TopK.Rows(pre, k, relu: false, Compute.Single);
        var w = new Tensor(dSae, d);
        rng.FillNormal(w.Span);
        var dense = new Tensor(rows, d);
        rng.FillNormal(dense.Span);
        return (codes, w, dense);
    }

    // Cases with d_sae ≥ 2·rows visit the entries latent by latent, the others row by row; (40, 700) splits the
    // latent walk across row ranges.
    [Theory]
    [InlineData(3, 17, 31, 5)]
    [InlineData(13, 65, 33, 7)]
    [InlineData(1, 130, 17, 1)]
    [InlineData(40, 700, 19, 9)]
    [InlineData(50, 20, 9, 3)]
    public void DecodeEqualsDenseProduct(int rows, int dSae, int d, int k)
    {
        var (codes, w, _) = Setup(rows, dSae, d, k, 11);
        var bias = Enumerable.Range(0, d).Select(i => i * 0.1f).ToArray();
        var output = new Tensor(rows, d);
        SparseKernels.Decode(codes, w, output, new Compute(2), bias);
        var dense = codes.ToDense();
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++)
            {
                double s = bias[j];
                for (int l = 0; l < dSae; l++) s += (double)dense[r, l] * w[l, j];
                Assert.Equal(s, output[r, j], 1e-4);
            }
    }

    [Theory]
    [InlineData(3, 17, 31, 5)]
    [InlineData(9, 65, 33, 7)]
    [InlineData(40, 700, 19, 9)]
    [InlineData(50, 20, 9, 3)]
    public void GatherDotAndScatterMatchDenseGradients(int rows, int dSae, int d, int k)
    {
        var (codes, w, g) = Setup(rows, dSae, d, k, 5);
        var grad = new float[codes.Count];
        SparseKernels.GatherDot(codes, g, w, grad, new Compute(2));
        var rowOf = codes.EntryRows();
        for (int e = 0; e < codes.Count; e++)
        {
            double s = 0;
            for (int j = 0; j < d; j++) s += (double)g[rowOf[e], j] * w[codes.Index[e], j];
            Assert.Equal(s, grad[e], 1e-4);
        }

        var gw = Tensor.Filled(1f, dSae, d); // accumulates on top of existing values
        SparseKernels.ScatterOuterAdd(codes, codes.Value, g, gw, new Compute(3));
        var dense = codes.ToDense();
        for (int l = 0; l < dSae; l++)
            for (int j = 0; j < d; j++)
            {
                double s = 1;
                for (int r = 0; r < rows; r++) s += (double)dense[r, l] * g[r, j];
                Assert.Equal(s, gw[l, j], 1e-4);
            }

        // Into the transposed layout [d, d_sae]: each latent's contributions are summed in the same order (from
        // zero, then added to what is there), so the result is exactly the transpose of that sum plus the old value.
        var fresh = new Tensor(dSae, d);
        SparseKernels.ScatterOuterAdd(codes, codes.Value, g, fresh, new Compute(2));
        var gwt = Tensor.Filled(1f, d, dSae);
        SparseKernels.ScatterOuterAddTransposed(codes, codes.Value, g, gwt, new Compute(3));
        for (int l = 0; l < dSae; l++)
            for (int j = 0; j < d; j++) Assert.Equal(1f + fresh[l, j], gwt[j, l]);
    }

    [Fact]
    public void TransposeAccumulates()
    {
        var rng = new Rng(3);
        var x = new Tensor(37, 70);
        rng.FillNormal(x.Span);
        var y = Tensor.Filled(2f, 70, 37);
        Ops.TransposeInto(x, y, accumulate: true, new Compute(2));
        for (int i = 0; i < 37; i++)
            for (int j = 0; j < 70; j++) Assert.Equal(x[i, j] + 2f, y[j, i]);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 17)]
    [InlineData(37, 33)]
    [InlineData(19, 130)]
    public void FromDenseKeepsExactlyTheNonZerosInOrder(int rows, int cols)
    {
        var rng = new Rng(21);
        var dense = new Tensor(rows, cols);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++)
                // Row 0 all zeros, row 1 (when there is one) all non-zero, the rest sparse with negative values too.
                dense[r, j] = r == 0 ? 0 : r == 1 ? 1 + j : rng.Bernoulli(0.3) ? (float)(rng.NextDouble() - 0.5) : 0;
        foreach (var compute in new[] { Compute.Single, new Compute(2), new Compute(3) })
        {
            var codes = SparseCodes.FromDense(dense, compute);
            Assert.Equal(rows, codes.Rows);
            Assert.Equal(cols, codes.Cols);
            int e = 0;
            for (int r = 0; r < rows; r++)
            {
                Assert.Equal(e, codes.RowStart[r]);
                for (int j = 0; j < cols; j++)
                    if (dense[r, j] != 0) { Assert.Equal(j, codes.Index[e]); Assert.Equal(dense[r, j], codes.Value[e]); e++; }
            }
            Assert.Equal(e, codes.RowStart[rows]);
            Assert.Equal(e, codes.Count);
            Assert.Equal(dense.Span.ToArray(), codes.ToDense().Span.ToArray());
            // Firing counts: rows where each latent is positive (negative entries are codes but do not fire).
            var expected = Enumerable.Range(0, cols).Select(j => Enumerable.Range(0, rows).Count(r => dense[r, j] > 0)).ToArray();
            Assert.Equal(expected, codes.FiringCounts(compute));
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 15)]
    [InlineData(33, 1031)]
    public void SumRowsAndAddRowVectorMatchAScalarReference(int rows, int cols)
    {
        var rng = new Rng(4);
        var x = new Tensor(rows, cols);
        rng.FillNormal(x.Span);
        var expected = new float[cols];
        for (int j = 0; j < cols; j++)
        {
            double s = 0;
            for (int r = 0; r < rows; r++) s += x[r, j];
            expected[j] = (float)s;
        }
        foreach (var compute in new[] { Compute.Single, new Compute(2), new Compute(3) })
        {
            var got = new float[cols];
            Ops.SumRows(x, got, compute: compute);
            Assert.Equal(expected, got); // float64 sums in row order: bit-identical whatever the threads
            var y = x.Clone();
            var bias = Enumerable.Range(0, cols).Select(j => j * 0.5f).ToArray();
            Ops.AddRowVector(y, bias, compute);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < cols; j++) Assert.Equal(x[r, j] + bias[j], y[r, j]);
        }
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void PositiveCountsOfDenseFeaturesEqualTheirCodesFiringCounts(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(43);
        foreach (int cols in SimdPaths.AwkwardLengths)
            foreach (int rows in new[] { 1, 9 })
            {
                // Zeros of both signs, NaN, infinities and subnormals: only values > 0 fire.
                var x = Tensor.FromArray(SimdPaths.Values(rows * cols, rng, 0.3), rows, cols);
                var expected = Enumerable.Range(0, cols).Select(j => Enumerable.Range(0, rows).Count(r => x[r, j] > 0)).ToArray();
                foreach (var compute in new[] { Compute.Single, new Compute(3) })
                    Assert.Equal(expected, Ops.PositiveCounts(x, compute, w));
                Assert.Equal(expected, SparseCodes.FromDense(x, Compute.Single).FiringCounts(Compute.Single));
            }
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void SumRowsIsExactAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(41);
        foreach (int cols in SimdPaths.AwkwardLengths)
        {
            const int Rows = 5;
            var x = Tensor.FromArray(SimdPaths.Values(Rows * cols, rng, 0.05), Rows, cols);
            var start = SimdPaths.Values(cols, rng, 0);
            var expected = new float[cols];
            var expectedAccumulated = new float[cols];
            for (int j = 0; j < cols; j++)
            {
                double s = 0;
                for (int r = 0; r < Rows; r++) s += x[r, j];
                expected[j] = (float)s;
                expectedAccumulated[j] = (float)(start[j] + s);
            }
            var got = new float[cols];
            Ops.SumRows(x, got, accumulate: false, new Compute(2), w);
            Assert.Equal(expected, got);
            Ops.SumRows(x, start, accumulate: true, new Compute(2), w);
            Assert.Equal(expectedAccumulated, start);
        }
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void NonZeroCountsAndCodesAreExactAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(42);
        foreach (int cols in SimdPaths.AwkwardLengths)
        {
            const int Rows = 4;
            // Mostly zeros (of both signs), with NaN, infinities and subnormals among the non-zeros.
            var values = SimdPaths.Values(Rows * cols, rng, 0.3);
            for (int i = 0; i < values.Length; i++) if (rng.Bernoulli(0.6)) values[i] = rng.Bernoulli(0.5) ? 0f : -0f;
            var dense = Tensor.FromArray(values, Rows, cols);
            var counts = new int[Rows];
            for (int r = 0; r < Rows; r++)
            {
                counts[r] = SparseCodes.CountNonZero(dense.Row(r), w);
                Assert.Equal(dense.Row(r).ToArray().Count(v => v != 0), counts[r]);
            }
            var codes = SparseCodes.FromDense(dense, counts, new Compute(2), w);
            for (int r = 0; r < Rows; r++)
            {
                var row = dense.Row(r).ToArray();
                var nonZero = Enumerable.Range(0, cols).Where(j => row[j] != 0).ToArray();
                Assert.Equal(nonZero, codes.RowIndex(r).ToArray());
                Assert.Equal(nonZero.Select(j => row[j]).ToArray(), codes.RowValue(r).ToArray());
            }
        }
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void FromDenseRejectsRowCountsThatDoNotMatchTheRows(string width)
    {
        var dense = new Tensor(2, 37);
        dense[1, 3] = 1; dense[1, 20] = -2; dense[1, 36] = 5;
        foreach (int claimed in new[] { 2, 4 })
        {
            var e = Assert.Throws<ArgumentException>(() => SparseCodes.FromDense(dense, [0, claimed], Compute.Single, SimdPaths.Parse(width)));
            Assert.Equal($"row 1 has 3 non-zero entries, its count says {claimed}", e.Message);
        }
    }

    [Theory]
    [InlineData(7, 5, 9, 2, 3)]
    [InlineData(33, 40, 17, 6, 4)]
    [InlineData(1, 3, 2, 1, 1)]
    public void TransposedProductEqualsTheDenseProductOfChosenColumns(int rows, int colsA, int colsB, int kA, int kB)
    {
        var rng = new Rng((ulong)(rows + colsA));
        var pa = new Tensor(rows, colsA); rng.FillNormal(pa.Span);
        var pb = new Tensor(rows, colsB); rng.FillNormal(pb.Span);
        var a = TopK.Rows(pa, kA, relu: false, Compute.Single);
        var b = TopK.Rows(pb, kB, relu: false, Compute.Single);
        var da = a.ToDense();
        var db = b.ToDense();
        int[] which = [.. Enumerable.Range(0, colsA).Where(c => c % 3 != 1).Reverse()];
        var dest = new double[which.Length * colsB + 5];
        Array.Fill(dest, 99); // overwritten
        SparseKernels.TransposedProduct(a.ToColumns(), b, which, which.Length, dest, new Compute(2));
        for (int k = 0; k < which.Length; k++)
            for (int j = 0; j < colsB; j++)
            {
                double s = 0;
                for (int t = 0; t < rows; t++) s += (double)da[t, which[k]] * db[t, j];
                Assert.Equal(s, dest[k * colsB + j], 9);
            }
        Assert.Equal(99, dest[^1]);
        Assert.Throws<ArgumentException>(() => SparseKernels.TransposedProduct(a.ToColumns(), TopK.Rows(new Tensor(rows + 1, colsB), 1, false, Compute.All), which, 1, dest, Compute.All));
    }

    [Fact]
    public void ToColumnsListsEachColumnsRowsAscendingWithTheirValues()
    {
        var dense = Tensor.FromArray([0, 2, 3, 4, 0, 0, 0, 5, 6], 3, 3);
        var c = SparseCodes.FromDense(dense, Compute.All).ToColumns();
        Assert.Equal([0, 1, 3, 5], c.ColStart);
        Assert.Equal([1, 0, 2, 0, 2], c.Row);
        Assert.Equal([4f, 2, 5, 3, 6], c.Value);
    }

    [Fact]
    public void SelectColumnsKeepsTheChosenColumnsRenumberedInTheGivenOrder()
    {
        // Rows (0, 2, 3), (4, 0, 0), (0, 5, 6); an explicit zero entry is dropped too.
        var codes = SparseCodes.FromRowCounts(3, [3, 1, 2]);
        int[] index = [0, 1, 2, 0, 1, 2];
        float[] value = [0, 2, 3, 4, 5, 6];
        index.CopyTo(codes.Index, 0);
        value.CopyTo(codes.Value, 0);
        var picked = codes.SelectColumns([2, 0]);
        Assert.Equal(2, picked.Cols);
        Assert.Equal([3f, 0, 0, 4, 6, 0], picked.ToDense().ToArray());
        Assert.Equal(3, picked.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => codes.SelectColumns([3]));
        Assert.Throws<ArgumentException>(() => codes.SelectColumns([1, 1]));
    }
}
