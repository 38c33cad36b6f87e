using System.Numerics;

namespace SaeSharp.Synthetic;

/// <summary>
/// Rectangular linear sum assignment (Hungarian algorithm with potentials and shortest augmenting paths,
/// Jonker–Volgenant style), O(n²·m) for n ≤ m. Same contract as scipy's <c>linear_sum_assignment</c>: min(n, m)
/// pairs, each row and column used at most once, total cost minimal.
/// </summary>
public static class Hungarian
{
    /// <summary>
    /// Minimum-cost matching for a row-major [rows, cols] cost matrix. Returns the matched (row, col) pairs sorted
    /// by row; set <paramref name="maximize"/> to maximise instead.
    /// </summary>
    public static (int[] Rows, int[] Cols) Solve(ReadOnlySpan<double> cost, int rows, int cols, bool maximize = false) =>
        Solve<double>(cost, rows, cols, maximize);

    /// <summary>
    /// The same for a float32 cost matrix. When rows ≤ cols and not maximising, the matrix is used in place (no copy),
    /// which matters for 16k × 16k similarity matrices (1 GB as float, 2 GB as double).
    /// </summary>
    public static (int[] Rows, int[] Cols) Solve(float[] cost, int rows, int cols, bool maximize = false)
    {
        if (!maximize && rows <= cols && cost.Length == (long)rows * cols)
        {
            foreach (float c in cost)
                if (!float.IsFinite(c)) throw new ArgumentException("cost matrix contains NaN or infinite entries");
            if (rows == 0) return ([], []);
            var match = SolveWide<float>(cost, rows, cols);
            return (Enumerable.Range(0, rows).ToArray(), match);
        }
        return Solve<float>(cost, rows, cols, maximize);
    }

    private static (int[] Rows, int[] Cols) Solve<T>(ReadOnlySpan<T> cost, int rows, int cols, bool maximize) where T : unmanaged, INumberBase<T>
    {
        if (rows < 0 || cols < 0 || cost.Length != (long)rows * cols)
            throw new ArgumentException($"cost matrix has {cost.Length} elements, expected {rows}x{cols}");
        foreach (T c in cost)
            if (!T.IsFinite(c)) throw new ArgumentException("cost matrix contains NaN or infinite entries");
        if (rows == 0 || cols == 0) return ([], []);
        bool transposed = rows > cols;
        int n = transposed ? cols : rows, m = transposed ? rows : cols;
        var a = new double[n * m];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                double v = double.CreateTruncating(cost[i * cols + j]);
                if (maximize) v = -v;
                if (transposed) a[j * m + i] = v; else a[i * m + j] = v;
            }
        var match = SolveWide<double>(a, n, m); // match[i] = column of row i
        var pairs = new (int R, int C)[n];
        for (int i = 0; i < n; i++) pairs[i] = transposed ? (match[i], i) : (i, match[i]);
        Array.Sort(pairs, (x, y) => x.R.CompareTo(y.R));
        return (pairs.Select(p => p.R).ToArray(), pairs.Select(p => p.C).ToArray());
    }

    // n ≤ m. Rows are inserted one at a time; each insertion runs Dijkstra over columns on reduced costs
    // a[i, j] − u[i] − v[j] ≥ 0 and augments along the shortest path. Arrays are 1-based, column 0 is the virtual start.
    private static int[] SolveWide<T>(T[] a, int n, int m) where T : unmanaged, INumberBase<T>
    {
        var u = new double[n + 1];
        var v = new double[m + 1];
        var p = new int[m + 1];   // p[j]: row matched to column j (0 = free)
        var way = new int[m + 1];
        var minv = new double[m + 1];
        var used = new bool[m + 1];
        for (int i = 1; i <= n; i++)
        {
            p[0] = i;
            int j0 = 0;
            Array.Fill(minv, double.PositiveInfinity);
            Array.Clear(used);
            do
            {
                used[j0] = true;
                int i0 = p[j0], j1 = 0;
                double delta = double.PositiveInfinity;
                int rowBase = (i0 - 1) * m - 1;
                for (int j = 1; j <= m; j++)
                {
                    if (used[j]) continue;
                    double cur = double.CreateTruncating(a[rowBase + j]) - u[i0] - v[j];
                    if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
                    if (minv[j] < delta) { delta = minv[j]; j1 = j; }
                }
                for (int j = 0; j <= m; j++)
                {
                    if (used[j]) { u[p[j]] += delta; v[j] -= delta; }
                    else minv[j] -= delta;
                }
                j0 = j1;
            } while (p[j0] != 0);
            do
            {
                int j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
            } while (j0 != 0);
        }
        var match = new int[n];
        for (int j = 1; j <= m; j++) if (p[j] != 0) match[p[j] - 1] = j - 1;
        return match;
    }
}
