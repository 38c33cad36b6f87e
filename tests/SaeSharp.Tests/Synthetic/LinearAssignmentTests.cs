using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class LinearAssignmentTests
{
    private static double BruteForce(double[] cost, int rows, int cols)
    {
        // Enumerate injective maps from the smaller side into the larger.
        bool t = rows > cols;
        int n = t ? cols : rows, m = t ? rows : cols;
        double best = double.PositiveInfinity;
        var used = new bool[m];
        void Rec(int i, double acc)
        {
            if (i == n) { best = Math.Min(best, acc); return; }
            for (int j = 0; j < m; j++)
            {
                if (used[j]) continue;
                used[j] = true;
                Rec(i + 1, acc + (t ? cost[j * cols + i] : cost[i * cols + j]));
                used[j] = false;
            }
        }
        Rec(0, 0);
        return best;
    }

    private static void AssertValid(int[] r, int[] c, int rows, int cols)
    {
        Assert.Equal(Math.Min(rows, cols), r.Length);
        Assert.Equal(r.Length, r.Distinct().Count());
        Assert.Equal(c.Length, c.Distinct().Count());
        Assert.All(r, x => Assert.InRange(x, 0, rows - 1));
        Assert.All(c, x => Assert.InRange(x, 0, cols - 1));
        Assert.Equal(r.Order(), r); // sorted by row
    }

    private static double Total(double[] cost, int cols, int[] r, int[] c) => r.Select((x, k) => cost[x * cols + c[k]]).Sum();

    [Theory]
    [InlineData(3, 5)]
    [InlineData(5, 3)]
    [InlineData(6, 6)]
    [InlineData(1, 4)]
    [InlineData(4, 1)]
    [InlineData(2, 7)]
    [InlineData(7, 7)]
    public void MatchesBruteForceOnRandomRectangularMatrices(int rows, int cols)
    {
        var rng = new Rng((ulong)(rows * 31 + cols));
        for (int trial = 0; trial < 25; trial++)
        {
            // Integer costs (many ties), normals, and mostly-constant matrices (the shape of activation distances: 1 off the few co-firing pairs).
            var cost = new double[rows * cols];
            for (int i = 0; i < cost.Length; i++)
                cost[i] = (trial % 3) switch { 0 => rng.NextInt(4), 1 => rng.Normal(), _ => rng.NextDouble() < 0.2 ? rng.NextDouble() : 1 };
            var (r, c) = LinearAssignment.Solve(cost, rows, cols, Compute.All);
            AssertValid(r, c, rows, cols);
            double best = BruteForce(cost, rows, cols);
            Assert.Equal(best, Total(cost, cols, r, c), 9);
            // The pruned solve feature matching runs (one candidate per row, one more per round, a row per block)
            // on the smaller side as rows.
            int n = Math.Min(rows, cols), m = Math.Max(rows, cols);
            var pruned = LinearAssignment.Solve(n, m, (which, count, dest) =>
            {
                for (int k = 0; k < count; k++)
                    for (int j = 0; j < m; j++) dest[k * m + j] = rows <= cols ? cost[which[k] * cols + j] : cost[j * cols + which[k]];
            }, Compute.Single, new AssignmentOptions { CandidatesPerRow = 1, AddedPerRound = 1, BlockEntries = m });
            Assert.Equal(n, pruned.Cols.Distinct().Count());
            Assert.Equal(best, pruned.TotalCost, 9);
            // The float path finds an optimum of the rounded costs.
            var fcost = cost.Select(x => (float)x).ToArray();
            var (fr, fc) = LinearAssignment.Solve(fcost, rows, cols, Compute.All);
            AssertValid(fr, fc, rows, cols);
            var rounded = fcost.Select(x => (double)x).ToArray();
            Assert.Equal(BruteForce(rounded, rows, cols), Total(rounded, cols, fr, fc), 5);
        }
    }

    /// <summary>
    /// The pruned solve (one candidate per row, one more per round, blocks of a few rows) against the solve whose
    /// candidates are the whole matrix (one round: plain shortest augmenting paths on the dense problem), on sizes
    /// past brute force. Both must reach the same optimal total; the pruned one needs rounds of the dual check.
    /// </summary>
    [Theory]
    [InlineData(40, 40, 0)]
    [InlineData(33, 57, 1)]
    [InlineData(64, 64, 2)]
    public void PrunedSolveReachesTheDenseOptimum(int rows, int cols, int kind)
    {
        var rng = new Rng((ulong)(1000 + kind));
        var cost = new double[rows * cols];
        for (int i = 0; i < cost.Length; i++)
            cost[i] = kind switch { 0 => rng.NextDouble(), 1 => rng.NextInt(5), _ => rng.NextDouble() < 0.05 ? rng.NextDouble() : 1 };
        void Fill(int[] which, int count, double[] dest)
        {
            for (int r = 0; r < count; r++) cost.AsSpan(which[r] * cols, cols).CopyTo(dest.AsSpan(r * cols));
        }
        var dense = LinearAssignment.Solve(rows, cols, Fill, Compute.Single, new AssignmentOptions { CandidatesPerRow = cols });
        Assert.Equal(1, dense.Rounds);
        var pruned = LinearAssignment.Solve(rows, cols, Fill, new Compute(2), new AssignmentOptions { CandidatesPerRow = 1, AddedPerRound = 1, BlockEntries = 3 * cols });
        Assert.True(pruned.Rounds > 1, "a single candidate per row cannot be optimal at once here");
        Assert.True(pruned.CandidatePairs < (long)rows * cols);
        AssertValid(pruned.Rows, pruned.Cols, rows, cols);
        Assert.Equal(dense.TotalCost, pruned.TotalCost, 9);
        Assert.Equal(Total(cost, cols, pruned.Rows, pruned.Cols), pruned.TotalCost, 9);
        for (int k = 0; k < rows; k++) Assert.Equal(cost[pruned.Rows[k] * cols + pruned.Cols[k]], pruned.Costs[k]);
    }

    [Fact]
    public void EqualRowsSpreadOverColumnsAndAKnownPermutationComesBack()
    {
        // Rows of one constant (dead latents) all tie; rows i < 50 prefer column perm[i] clearly.
        const int n = 200;
        var perm = new Rng(5).Permutation(n);
        var cost = new double[n * n];
        Array.Fill(cost, 1.0);
        for (int i = 0; i < 50; i++) cost[i * n + perm[i]] = 0.1;
        var a = LinearAssignment.Solve(n, n, (which, count, dest) =>
        {
            for (int r = 0; r < count; r++) cost.AsSpan(which[r] * n, n).CopyTo(dest.AsSpan(r * n));
        }, Compute.All, new AssignmentOptions { CandidatesPerRow = 2 });
        for (int i = 0; i < 50; i++) Assert.Equal(perm[i], a.Cols[i]);
        Assert.Equal(50 * 0.1 + 150, a.TotalCost, 9);
        Assert.Equal(n, a.Cols.Distinct().Count());
    }

    [Fact]
    public void MaximizeFindsLargestSum()
    {
        double[] cost = [1, 9, 3, 8, 2, 7];
        var (r, c) = LinearAssignment.Solve(cost, 2, 3, Compute.All, maximize: true);
        Assert.Equal([0, 1], r);
        Assert.Equal([1, 0], c); // 9 + 8
    }

    [Fact]
    public void RejectsBadInput()
    {
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve(new double[5], 2, 3, Compute.All));
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve([1, double.NaN], 1, 2, Compute.All));
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve([1, double.PositiveInfinity], 1, 2, Compute.All));
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve(3, 2, (_, _, _) => { }, Compute.All));
        Assert.Empty(LinearAssignment.Solve(Array.Empty<double>(), 0, 3, Compute.All).Rows);
    }
}
