using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class HungarianTests
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

    [Theory]
    [InlineData(3, 5)]
    [InlineData(5, 3)]
    [InlineData(6, 6)]
    [InlineData(1, 4)]
    [InlineData(4, 1)]
    [InlineData(2, 7)]
    public void MatchesBruteForceOnRandomRectangularMatrices(int rows, int cols)
    {
        var rng = new Rng((ulong)(rows * 31 + cols));
        for (int trial = 0; trial < 25; trial++)
        {
            var cost = new double[rows * cols];
            for (int i = 0; i < cost.Length; i++) cost[i] = trial % 3 == 0 ? rng.NextInt(4) : rng.Normal();
            var (r, c) = Hungarian.Solve(cost, rows, cols);
            Assert.Equal(Math.Min(rows, cols), r.Length);
            Assert.Equal(r.Length, r.Distinct().Count());
            Assert.Equal(c.Length, c.Distinct().Count());
            Assert.All(r, x => Assert.InRange(x, 0, rows - 1));
            Assert.All(c, x => Assert.InRange(x, 0, cols - 1));
            double total = 0;
            for (int k = 0; k < r.Length; k++) total += cost[r[k] * cols + c[k]];
            Assert.Equal(BruteForce(cost, rows, cols), total, 9);
            // The float path (used in place when rows <= cols) finds an optimum of the rounded costs.
            var fcost = cost.Select(x => (float)x).ToArray();
            var (fr, fc) = Hungarian.Solve(fcost, rows, cols);
            double ftotal = 0;
            for (int k = 0; k < fr.Length; k++) ftotal += fcost[fr[k] * cols + fc[k]];
            Assert.Equal(BruteForce(fcost.Select(x => (double)x).ToArray(), rows, cols), ftotal, 5);
            Assert.Equal(fr.Length, fc.Distinct().Count());
        }
    }

    [Fact]
    public void MaximizeFindsLargestSum()
    {
        double[] cost = [1, 9, 3, 8, 2, 7];
        var (r, c) = Hungarian.Solve(cost, 2, 3, maximize: true);
        Assert.Equal([0, 1], r);
        Assert.Equal([1, 0], c); // 9 + 8
    }

    [Fact]
    public void RejectsBadInput()
    {
        Assert.Throws<ArgumentException>(() => Hungarian.Solve(new double[5], 2, 3));
        Assert.Throws<ArgumentException>(() => Hungarian.Solve([1, double.NaN], 1, 2));
        Assert.Empty(Hungarian.Solve(Array.Empty<double>(), 0, 3).Rows);
    }
}
