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

    /// <summary>The row each entry belongs to.</summary>
    public int[] EntryRows()
    {
        var rows = new int[Count];
        for (int r = 0; r < Rows; r++) rows.AsSpan(RowStart[r], RowStart[r + 1] - RowStart[r]).Fill(r);
        return rows;
    }
}
