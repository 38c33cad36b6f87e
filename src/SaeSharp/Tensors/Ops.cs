using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace SaeSharp.Tensors;

/// <summary>Row-wise and whole-tensor helpers over <see cref="TensorPrimitives"/>.</summary>
public static class Ops
{
    /// <summary>Elements per chunk when a flat buffer is processed in parallel pieces of a fixed size.</summary>
    public const int ChunkLength = 1 << 16;

    /// <summary>How many <see cref="ChunkLength"/> pieces cover <paramref name="length"/> elements.</summary>
    public static int Chunks(int length) => (length + ChunkLength - 1) / ChunkLength;

    /// <summary>Piece <paramref name="i"/> of a flat buffer cut into <see cref="ChunkLength"/> pieces.</summary>
    public static Span<float> Chunk(Span<float> data, int i) => data.Slice(i * ChunkLength, Math.Min(ChunkLength, data.Length - i * ChunkLength));

    /// <summary>Zeroes a tensor, in parallel pieces.</summary>
    public static void Clear(Tensor x, Compute compute) =>
        compute.For(Chunks(x.Length), i => Chunk(x.Span, i).Clear());

    /// <summary>Adds <paramref name="bias"/> to every row of x in place (rows in parallel).</summary>
    public static void AddRowVector(Tensor x, ReadOnlySpan<float> bias, Compute compute)
    {
        if (bias.Length != x.Cols) throw new ArgumentException($"bias has {bias.Length} elements, rows have {x.Cols}");
        var b = bias.ToArray();
        compute.ForRange(x.Rows, 64, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++) TensorPrimitives.Add(x.Row(r), b, x.Row(r));
        });
    }

    /// <summary>Subtracts <paramref name="bias"/> from every row of x in place.</summary>
    public static void SubtractRowVector(Tensor x, ReadOnlySpan<float> bias)
    {
        if (bias.Length != x.Cols) throw new ArgumentException($"bias has {bias.Length} elements, rows have {x.Cols}");
        for (int r = 0; r < x.Rows; r++) TensorPrimitives.Subtract(x.Row(r), bias, x.Row(r));
    }

    /// <summary>Column sums of x [rows, cols] into <paramref name="result"/> (accumulated in float64 for stability).</summary>
    public static void SumRows(Tensor x, Span<float> result, Compute compute, bool accumulate = false) =>
        SumRows(x, result, accumulate, compute, Simd.Best);

    /// <summary>
    /// <see cref="SumRows(Tensor, Span{float}, Compute, bool)"/> at a given vector width. Each column is summed in row
    /// order (a lane per column, no sum across lanes), so every width and thread count gives the same bits.
    /// </summary>
    internal static void SumRows(Tensor x, Span<float> result, bool accumulate, Compute compute, SimdWidth width)
    {
        if (result.Length != x.Cols) throw new ArgumentException($"result has {result.Length} elements, rows have {x.Cols}");
        var acc = new double[x.Cols];
        compute.ForRange(x.Cols, 1024, (c0, c1) =>
        {
            var a = acc.AsSpan(c0, c1 - c0);
            for (int r = 0; r < x.Rows; r++) AddWidened(x.Row(r).Slice(c0, c1 - c0), a, width);
        }, align: 16);
        for (int j = 0; j < acc.Length; j++) result[j] = (float)(accumulate ? result[j] + acc[j] : acc[j]);
    }

    /// <summary>
    /// How many entries of each column of x [rows, cols] are positive (a dense latent tensor's firing counts), columns
    /// split over threads; the same counts as <see cref="SparseCodes.FiringCounts"/> of its non-zero codes.
    /// </summary>
    public static int[] PositiveCounts(Tensor x, Compute compute) => PositiveCounts(x, compute, Simd.Best);

    /// <summary><see cref="PositiveCounts(Tensor, Compute)"/> at a given vector width.</summary>
    internal static int[] PositiveCounts(Tensor x, Compute compute, SimdWidth width)
    {
        if (x.Rank != 2) throw new ArgumentException($"PositiveCounts needs a 2-D tensor, got [{x.ShapeString}]");
        if (x.Rows >= 1 << 24) throw new ArgumentException($"PositiveCounts counts in float lanes, exact below 2^24 rows; got {x.Rows}");
        var acc = new float[x.Cols];
        compute.ForRange(x.Cols, 1024, (c0, c1) =>
        {
            var a = acc.AsSpan(c0, c1 - c0);
            for (int r = 0; r < x.Rows; r++)
            {
                var loop = new PositiveCount(x.Row(r).Slice(c0, c1 - c0), a);
                Simd.Run(ref loop, width);
            }
        }, align: 16);
        var counts = new int[x.Cols];
        for (int j = 0; j < counts.Length; j++) counts[j] = (int)acc[j];
        return counts;
    }

    // counts[j] += x[j] > 0 ? 1 : 0 (NaN counts as not firing, as in the codes' Value > 0).
    private readonly ref struct PositiveCount(ReadOnlySpan<float> x, Span<float> counts) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _x = x;
        private readonly Span<float> _counts = counts;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var x = _x; var counts = _counts;
            var one = T.Create(1f);
            for (; j + T.Count <= x.Length; j += T.Count)
                (T.Load(counts, j) + (T.GreaterThan(T.Load(x, j), T.Zero) & one)).Store(counts, j);
            return j;
        }
    }

    /// <summary>accumulator[j] += x[j], in float64.</summary>
    internal static void AddWidened(ReadOnlySpan<float> x, Span<double> accumulator, SimdWidth width)
    {
        if (accumulator.Length < x.Length) throw new ArgumentException($"accumulator has {accumulator.Length} elements, x has {x.Length}");
        var loop = new WidenedAdd(x, accumulator);
        Simd.Run(ref loop, width);
    }

    private readonly ref struct WidenedAdd(ReadOnlySpan<float> x, Span<double> accumulator) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _x = x;
        private readonly Span<double> _accumulator = accumulator;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var x = _x; var acc = _accumulator;
            for (; j + T.Count <= x.Length; j += T.Count) T.Load(x, j).AddWidenedTo(acc, j);
            return j;
        }
    }

    /// <summary>The transpose of a 2-D tensor, as a new tensor.</summary>
    public static Tensor Transpose(Tensor x, Compute compute)
    {
        if (x.Rank != 2) throw new ArgumentException("Transpose needs a 2-D tensor");
        var t = Tensor.Uninitialized(x.Dim(1), x.Dim(0));
        TransposeInto(x, t, accumulate: false, compute: compute);
        return t;
    }

    /// <summary>y = xᵀ (or y += xᵀ), blocked for cache locality.</summary>
    public static void TransposeInto(Tensor x, Tensor y, bool accumulate, Compute compute)
    {
        int rows = x.Dim(0), cols = x.Dim(1);
        y.EnsureShape("transpose output", cols, rows);
        const int Block = 32;
        var xd = x.Data; int xo = x.Offset;
        var yd = y.Data; int yo = y.Offset;
        compute.ForRange(cols, Block, (c0, c1) =>
        {
            for (int i0 = 0; i0 < rows; i0 += Block)
                for (int j0 = c0; j0 < c1; j0 += Block)
                {
                    int i1 = Math.Min(rows, i0 + Block), j1 = Math.Min(c1, j0 + Block);
                    for (int j = j0; j < j1; j++)
                        for (int i = i0; i < i1; i++)
                        {
                            ref float dst = ref yd[yo + j * rows + i];
                            float v = xd[xo + i * cols + j];
                            dst = accumulate ? dst + v : v;
                        }
                }
        }, Block);
    }

    /// <summary>Euclidean norm of every row of x.</summary>
    public static float[] RowNorms(Tensor x)
    {
        var n = new float[x.Rows];
        for (int r = 0; r < x.Rows; r++) n[r] = TensorPrimitives.Norm(x.Row(r));
        return n;
    }

    /// <summary>True when any element is NaN or infinite.</summary>
    public static bool HasNonFinite(ReadOnlySpan<float> x)
    {
        foreach (float v in x) if (!float.IsFinite(v)) return true;
        return false;
    }
}
