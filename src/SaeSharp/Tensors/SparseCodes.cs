using System.Numerics;
using System.Runtime.CompilerServices;

namespace SaeSharp.Tensors;

/// <summary>
/// Sparse rows in CSR form: row r holds entries [RowStart[r], RowStart[r+1]) of <see cref="Index"/> and
/// <see cref="Value"/>, indices ascending within a row for batch top-k, by value for row top-k. This is how
/// SaeSharp carries top-k latent codes: decode and weight gradients touch only these entries.
/// </summary>
public sealed class SparseCodes
{
    public int Rows { get; }
    public int Cols { get; }
    public int[] RowStart { get; }
    public int[] Index { get; private set; }
    public float[] Value { get; private set; }

    public SparseCodes(int rows, int cols, int capacity)
    {
        if (rows < 0 || cols < 0 || capacity < 0) throw new ArgumentOutOfRangeException(nameof(rows));
        Rows = rows;
        Cols = cols;
        RowStart = new int[rows + 1];
        Index = new int[capacity];
        Value = new float[capacity];
    }

    /// <summary>
    /// The non-zero entries of dense activations [rows, cols] (e.g. a ReLU SAE's latents), rows in parallel: a
    /// vectorised count per row, then a copy of each row's entries into its slice.
    /// </summary>
    public static SparseCodes FromDense(Tensor dense, Compute compute)
    {
        var c = compute;
        var counts = new int[dense.Rows];
        c.ForRange(dense.Rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++) counts[r] = CountNonZero(dense.Row(r));
        });
        return FromDense(dense, counts, c);
    }

    /// <summary><see cref="FromDense(Tensor, Compute)"/> given each row's non-zero count (from a pass that already read the rows).</summary>
    public static SparseCodes FromDense(Tensor dense, int[] rowCounts, Compute compute) => FromDense(dense, rowCounts, compute, Simd.Best);

    /// <summary><see cref="FromDense(Tensor, int[], Compute)"/> scanning at a given vector width (same codes at every width).</summary>
    internal static SparseCodes FromDense(Tensor dense, int[] rowCounts, Compute compute, SimdWidth width)
    {
        int rows = dense.Rows;
        if (rowCounts.Length != rows) throw new ArgumentException($"{rowCounts.Length} row counts for {rows} rows");
        var codes = FromRowCounts(dense.Cols, rowCounts);
        compute.ForRange(rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                int start = codes.RowStart[r], end = codes.RowStart[r + 1];
                var copy = new NonZeroCopy(dense.Row(r), codes.Index.AsSpan(start, end - start), codes.Value.AsSpan(start, end - start));
                Simd.Run(ref copy, width);
                if (copy.Written != end - start)
                    throw new ArgumentException($"row {r} has {copy.Written} non-zero entries, its count says {end - start}");
            }
        });
        return codes;
    }

    // Writes the non-zero entries of a row (ascending) while they fit, visiting only the set bits of each vector's
    // non-zero mask: a sparse row costs one compare per vector. Written counts them all, also those that did not fit.
    private ref struct NonZeroCopy(ReadOnlySpan<float> row, Span<int> index, Span<float> value) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _row = row;
        private readonly Span<int> _index = index;
        private readonly Span<float> _value = value;
        public int Written { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var row = _row; var index = _index; var value = _value;
            int w = Written;
            for (; j + T.Count <= row.Length; j += T.Count)
                for (uint mask = T.Bits(~T.EqualTo(T.Load(row, j), T.Zero)); mask != 0; mask &= mask - 1, w++)
                {
                    if (w >= index.Length) continue;
                    int t = j + BitOperations.TrailingZeroCount(mask);
                    index[w] = t;
                    value[w] = row[t];
                }
            Written = w;
            return j;
        }
    }

    /// <summary>Empty codes laid out for the given number of entries in each row (RowStart filled; entries to be written).</summary>
    public static SparseCodes FromRowCounts(int cols, int[] rowCounts)
    {
        long total = 0;
        foreach (int n in rowCounts) total += n;
        if (total > Array.MaxLength) throw new ArgumentException($"{total} entries do not fit one code array; use a smaller batch");
        var codes = new SparseCodes(rowCounts.Length, cols, (int)total);
        for (int r = 0; r < rowCounts.Length; r++) codes.RowStart[r + 1] = codes.RowStart[r] + rowCounts[r];
        return codes;
    }

    /// <summary>How many entries of <paramref name="row"/> are not zero (NaN counts as non-zero).</summary>
    public static int CountNonZero(ReadOnlySpan<float> row) => CountNonZero(row, Simd.Best);

    /// <summary><see cref="CountNonZero(ReadOnlySpan{float})"/> at a given vector width.</summary>
    internal static int CountNonZero(ReadOnlySpan<float> row, SimdWidth width)
    {
        var count = new NonZeroCount(row);
        Simd.Run(ref count, width);
        return count.Count;
    }

    private ref struct NonZeroCount(ReadOnlySpan<float> row) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _row = row;
        public int Count { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var row = _row;
            int n = 0;
            for (; j + T.Count <= row.Length; j += T.Count) n += BitOperations.PopCount(T.Bits(~T.EqualTo(T.Load(row, j), T.Zero)));
            Count += n;
            return j;
        }
    }

    /// <summary>How many entries of each latent (column) are positive, i.e. how many rows it fired on; rows in parallel.</summary>
    public int[] FiringCounts(Compute compute)
    {
        var c = compute;
        int parts = Math.Max(1, Math.Min(c.Threads, Rows));
        var partial = new int[parts][];
        c.For(parts, part =>
        {
            var counts = new int[Cols];
            int r0 = (int)((long)Rows * part / parts), r1 = (int)((long)Rows * (part + 1) / parts);
            for (int e = RowStart[r0]; e < RowStart[r1]; e++) if (Value[e] > 0) counts[Index[e]]++;
            partial[part] = counts;
        });
        var total = partial[0];
        for (int p = 1; p < parts; p++) for (int j = 0; j < Cols; j++) total[j] += partial[p][j];
        return total;
    }

    /// <summary>Codes with exactly <paramref name="k"/> entries per row (row top-k layout).</summary>
    public static SparseCodes Fixed(int rows, int cols, int k)
    {
        var s = new SparseCodes(rows, cols, checked(rows * k));
        for (int r = 0; r <= rows; r++) s.RowStart[r] = r * k;
        return s;
    }

    public int Count => RowStart[Rows];

    public ReadOnlySpan<int> RowIndex(int r) => Index.AsSpan(RowStart[r], RowStart[r + 1] - RowStart[r]);
    public Span<float> RowValue(int r) => Value.AsSpan(RowStart[r], RowStart[r + 1] - RowStart[r]);

    internal void EnsureCapacity(int n)
    {
        if (Index.Length >= n) return;
        Index = new int[n];
        Value = new float[n];
    }

    /// <summary>The dense [Rows, Cols] matrix.</summary>
    public Tensor ToDense()
    {
        var t = new Tensor(Rows, Cols);
        for (int r = 0; r < Rows; r++)
        {
            var row = t.Row(r);
            for (int e = RowStart[r]; e < RowStart[r + 1]; e++) row[Index[e]] += Value[e];
        }
        return t;
    }

    /// <summary>Entries of the same pattern with other values (e.g. gradients), sharing the index arrays.</summary>
    public float[] NewValues() => new float[Count];

    /// <summary>
    /// The column-major (CSC) view of the same entries: for each column, the entry numbers in ascending row
    /// order. Lets per-column work (scatter into weight rows) run in parallel without atomics.
    /// </summary>
    public (int[] ColStart, int[] Entry) ByColumn()
    {
        var colStart = new int[Cols + 1];
        int count = Count;
        for (int e = 0; e < count; e++) colStart[Index[e] + 1]++;
        for (int j = 0; j < Cols; j++) colStart[j + 1] += colStart[j];
        var fill = (int[])colStart.Clone();
        var entry = new int[count];
        for (int r = 0; r < Rows; r++)
            for (int e = RowStart[r]; e < RowStart[r + 1]; e++)
                entry[fill[Index[e]]++] = e;
        return (colStart, entry);
    }

    /// <summary>The same entries by column (CSC), each column's rows ascending, with their values alongside.</summary>
    public SparseColumns ToColumns()
    {
        var (colStart, entry) = ByColumn();
        var rows = EntryRows();
        var row = new int[entry.Length];
        var value = new float[entry.Length];
        for (int t = 0; t < entry.Length; t++) { row[t] = rows[entry[t]]; value[t] = Value[entry[t]]; }
        return new SparseColumns(Rows, Cols, colStart, row, value);
    }

    /// <summary>
    /// The entries of the given distinct <paramref name="columns"/> only, column columns[k] renumbered k (so the result
    /// has columns.Length columns); zeros dropped. Within a row, entries keep their order.
    /// </summary>
    public SparseCodes SelectColumns(IReadOnlyList<int> columns)
    {
        var map = new int[Cols];
        Array.Fill(map, -1);
        for (int k = 0; k < columns.Count; k++)
        {
            int c = columns[k];
            if ((uint)c >= (uint)Cols) throw new ArgumentOutOfRangeException(nameof(columns), $"column {c} of codes with {Cols} columns");
            if (map[c] >= 0) throw new ArgumentException($"column {c} is selected twice", nameof(columns));
            map[c] = k;
        }
        var counts = new int[Rows];
        for (int r = 0; r < Rows; r++)
            for (int e = RowStart[r]; e < RowStart[r + 1]; e++) if (map[Index[e]] >= 0 && Value[e] != 0) counts[r]++;
        var kept = FromRowCounts(columns.Count, counts);
        for (int r = 0; r < Rows; r++)
        {
            int w = kept.RowStart[r];
            for (int e = RowStart[r]; e < RowStart[r + 1]; e++)
                if (map[Index[e]] >= 0 && Value[e] != 0) { kept.Index[w] = map[Index[e]]; kept.Value[w++] = Value[e]; }
        }
        return kept;
    }

    /// <summary>The row each entry belongs to.</summary>
    public int[] EntryRows()
    {
        var rows = new int[Count];
        for (int r = 0; r < Rows; r++) rows.AsSpan(RowStart[r], RowStart[r + 1] - RowStart[r]).Fill(r);
        return rows;
    }
}

/// <summary>
/// Sparse columns in CSC form: column c holds entries [ColStart[c], ColStart[c+1]) of <see cref="Row"/> (ascending) and
/// <see cref="Value"/>. Built from <see cref="SparseCodes.ToColumns"/> where work goes latent by latent.
/// </summary>
public sealed record SparseColumns(int Rows, int Cols, int[] ColStart, int[] Row, float[] Value);
