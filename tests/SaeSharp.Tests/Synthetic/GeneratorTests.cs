using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class GeneratorTests
{
    private static double[] FiringRates(Tensor acts)
    {
        var rates = new double[acts.Cols];
        for (int r = 0; r < acts.Rows; r++) { var row = acts.Row(r); for (int j = 0; j < row.Length; j++) if (row[j] > 0) rates[j]++; }
        return rates.Select(c => c / acts.Rows).ToArray();
    }

    private static double Phi(Tensor acts, int a, int b)
    {
        double n = acts.Rows, n11 = 0, na = 0, nb = 0;
        for (int r = 0; r < acts.Rows; r++)
        {
            bool x = acts[r, a] > 0, y = acts[r, b] > 0;
            if (x) na++; if (y) nb++; if (x && y) n11++;
        }
        double pa = na / n, pb = nb / n;
        return (n11 / n - pa * pb) / Math.Sqrt(pa * (1 - pa) * pb * (1 - pb));
    }

    // For two Gaussians thresholded at their medians, P(both) = 1/4 + asin(ρ)/(2π), so φ = 2·asin(ρ)/π.
    private static double TheoreticalPhiAtHalf(double rho) => 2 * Math.Asin(rho) / Math.PI;

    [Fact]
    public void IndependentFiringRatesMatchProbabilities()
    {
        float[] p = [0.01f, 0.05f, 0.2f, 0.5f, 0.9f, 0f, 1f];
        var gen = new ActivationGenerator(p);
        const int n = 40_000;
        var rates = FiringRates(gen.Sample(n, new Rng(1), compute: Compute.All));
        for (int j = 0; j < p.Length; j++)
            Assert.InRange(rates[j], p[j] - 5 * Math.Sqrt(p[j] * (1 - p[j]) / n) - 1e-9, p[j] + 5 * Math.Sqrt(p[j] * (1 - p[j]) / n) + 1e-9);
    }

    [Fact]
    public void MagnitudesFollowMeanAndStd()
    {
        var gen = new ActivationGenerator([1f, 1f, 0.5f], meanMagnitudes: [2f, 3f, 1.5f], stdMagnitudes: [0.5f, 0f, 0f]);
        var acts = gen.Sample(20_000, new Rng(2), compute: Compute.All);
        double sum = 0, sq = 0;
        for (int r = 0; r < acts.Rows; r++) { sum += acts[r, 0]; sq += acts[r, 0] * acts[r, 0]; Assert.Equal(3f, acts[r, 1]); Assert.True(acts[r, 2] is 0f or 1.5f); }
        double mean = sum / acts.Rows, std = Math.Sqrt(sq / acts.Rows - mean * mean);
        Assert.InRange(mean, 2 - 5 * 0.5 / Math.Sqrt(acts.Rows), 2 + 5 * 0.5 / Math.Sqrt(acts.Rows));
        Assert.InRange(std, 0.48, 0.52);
        Assert.All(acts.ToArray(), v => Assert.True(v >= 0));
    }

    [Fact]
    public void FullCopulaPhiMatchesTheory()
    {
        var corr = Correlations.FromPairs(3, new Dictionary<(int, int), double> { [(0, 1)] = 0.6, [(0, 2)] = -0.4, [(1, 2)] = -0.2 });
        var gen = new ActivationGenerator([0.5f, 0.5f, 0.5f], correlation: new FullCorrelation(corr));
        var acts = gen.Sample(40_000, new Rng(5), compute: Compute.All);
        // Standard error of φ is about 1/√N = 0.005.
        Assert.Equal(TheoreticalPhiAtHalf(0.6), Phi(acts, 0, 1), 0.03);
        Assert.Equal(TheoreticalPhiAtHalf(-0.4), Phi(acts, 0, 2), 0.03);
        Assert.Equal(TheoreticalPhiAtHalf(-0.2), Phi(acts, 1, 2), 0.03);
    }

    [Fact]
    public void CopulaKeepsMarginalFiringRates()
    {
        var corr = Correlations.FromPairs(3, new Dictionary<(int, int), double> { [(0, 1)] = 0.7, [(1, 2)] = 0.3 });
        float[] p = [0.05f, 0.3f, 0.8f];
        var rates = FiringRates(new ActivationGenerator(p, correlation: new FullCorrelation(corr)).Sample(40_000, new Rng(6), compute: Compute.All));
        for (int j = 0; j < 3; j++) Assert.Equal(p[j], rates[j], 0.015);
    }

    [Fact]
    public void LowRankCopulaPhiMatchesTheory()
    {
        // C = F·Fᵀ + diag(1 − |Fᵢ|²): ρ01 = 0.8·0.7 = 0.56, ρ02 = 0.8·(−0.5) = −0.4.
        var f = Tensor.FromArray([0.8f, 0.7f, -0.5f], 3, 1);
        var d = Tensor.FromArray([1 - 0.64f, 1 - 0.49f, 1 - 0.25f], 3);
        var gen = new ActivationGenerator([0.5f, 0.5f, 0.5f], correlation: new LowRankCorrelation(f, d));
        var acts = gen.Sample(40_000, new Rng(7), compute: Compute.All);
        Assert.Equal(TheoreticalPhiAtHalf(0.56), Phi(acts, 0, 1), 0.03);
        Assert.Equal(TheoreticalPhiAtHalf(-0.4), Phi(acts, 0, 2), 0.03);
        Assert.Equal(TheoreticalPhiAtHalf(-0.35), Phi(acts, 1, 2), 0.03);
    }

    [Fact]
    public void LowRankCopulaKeepsSmallMarginalRates()
    {
        // Thresholds far in the tail exercise the bracketing grid; p = 0 and 1 and a zero diagonal are edge cases.
        var f = Tensor.FromArray([0.6f, 0.8f, 0.3f, 1f, 0.5f, 0.2f], 6, 1);
        var d = Tensor.FromArray([0.64f, 0.36f, 0.91f, 0f, 0.75f, 0.96f], 6);
        float[] p = [0.002f, 0.01f, 0.05f, 0.3f, 0f, 1f];
        const int n = 60_000;
        var rates = FiringRates(new ActivationGenerator(p, correlation: new LowRankCorrelation(f, d)).Sample(n, new Rng(11), compute: Compute.All));
        for (int j = 0; j < p.Length; j++)
            Assert.True(Math.Abs(rates[j] - p[j]) <= 5 * Math.Sqrt(p[j] * (1 - p[j]) / n) + 1e-9, $"feature {j}: rate {rates[j]}, p {p[j]}");
    }

    [Fact]
    public void SamplingIsDeterministicAcrossThreadCounts()
    {
        var lr = Correlations.RandomLowRank(50, 4, 0.3f, new Rng(1));
        var gen = new ActivationGenerator(Profiles.Zipfian(50, 1, 0.01, 0.5), stdMagnitudes: Profiles.Constant(50, 0.3), correlation: lr);
        var a = gen.Sample(300, new Rng(9), Compute.Single);
        var b = gen.Sample(300, new Rng(9), new Compute(3));
        Assert.Equal(a.ToArray(), b.ToArray());
    }

    /// <summary>
    /// The sparse codes training draws hold exactly the non-zero activations of the dense sample from the same seed
    /// (ascending within each row, no zeros), through a correlation, the hierarchy and a modifier that works densely;
    /// the hidden activations equal the dense product f·V + bias.
    /// </summary>
    [Fact]
    public void SparseCodesAreTheDenseSamplesNonZeros()
    {
        var lr = Correlations.RandomLowRank(120, 3, 0.3f, new Rng(1));
        var forest = Hierarchy.RandomForest(4, 2, 3, 3, 0.5, new Rng(2), numFeatures: 120);
        var gen = new ActivationGenerator(Profiles.Zipfian(120, 1, 0.05, 0.6), stdMagnitudes: Profiles.Constant(120, 0.8), correlation: lr,
            modifiers: [new HierarchyModifier(forest, true), new Lambda((a, _) => { for (int r = 0; r < a.Rows; r++) a[r, 119] = r % 3 - 0.5f; })]);
        var dense = gen.Sample(150, new Rng(3), new Compute(2));
        var codes = gen.SampleCodes(150, new Rng(3), new Compute(3));
        for (int r = 0; r < dense.Rows; r++)
        {
            var expected = Enumerable.Range(0, dense.Cols).Where(j => dense[r, j] != 0).ToArray();
            Assert.Equal(expected, codes.RowIndex(r).ToArray());
            Assert.Equal(expected.Select(j => dense[r, j]).ToArray(), codes.RowValue(r).ToArray());
        }
        Assert.Contains(Enumerable.Range(0, 150), r => dense[r, 119] == 0.5f); // the dense modifier's new entries survive

        var dict = FeatureDictionary.CreateRandom(120, 9, new Rng(4), Compute.All, DictionaryBias.RandomUnit, 1);
        var (sparseFeatures, hidden) = gen.SampleHiddenCodes(dict, 150, new Rng(3), compute: Compute.All);
        Assert.Equal(codes.Index[..codes.Count], sparseFeatures.Index[..sparseFeatures.Count]);
        var reference = dict.Forward(dense, Compute.All);
        for (int i = 0; i < hidden.Length; i++) Assert.Equal(reference.Span[i], hidden.Span[i], 4);
    }

    [Fact]
    public void InvalidInputsGiveClearErrors()
    {
        var e = Assert.Throws<ArgumentException>(() => new FullCorrelation(new Tensor(2, 3)));
        Assert.Contains("square", e.Message);
        e = Assert.Throws<ArgumentException>(() => new FullCorrelation(Tensor.FromArray([1f, 0f, 0f, 2f], 2, 2)));
        Assert.Contains("diagonal", e.Message);
        e = Assert.Throws<ArgumentException>(() => new FullCorrelation(Tensor.FromArray([1f, 2f, 2f, 1f], 2, 2)));
        Assert.Contains("positive definite", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ActivationGenerator([0.5f, 1.5f]));
        Assert.Contains("firing_probabilities[1]", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ActivationGenerator([0.5f, 0.5f], meanMagnitudes: [1f]));
        Assert.Contains("mean_firing_magnitudes", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ActivationGenerator([0.5f], stdMagnitudes: [-1f]));
        Assert.Contains("std_firing_magnitudes", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ActivationGenerator([0.5f, 0.5f, 0.5f], correlation: new FullCorrelation(Correlations.FromPairs(2, null))));
        Assert.Contains("correlation has 2 features", e.Message);
        Assert.Throws<ArgumentException>(() => new LowRankCorrelation(Tensor.FromArray([0.5f], 1, 1), Tensor.FromArray([0.5f], 1)));
    }

    [Fact]
    public void ModifiersRunInOrderThenRelu()
    {
        // (1 − 1.5)·(−1) = 0.5 only in this order, and only if no ReLU runs between modifiers; column 1 ends at −1 → 0.
        var gen = new ActivationGenerator([1f, 1f], modifiers: [
            new Lambda((a, _) => { for (int r = 0; r < a.Rows; r++) a[r, 0] -= 1.5f; }),
            new Lambda((a, _) => { foreach (ref float v in a.Span) v = -v; })]);
        var acts = gen.Sample(3, new Rng(1), compute: Compute.All);
        for (int r = 0; r < 3; r++) { Assert.Equal(0.5f, acts[r, 0]); Assert.Equal(0f, acts[r, 1]); }
    }

    private sealed class Lambda(Action<Tensor, Rng> f) : IActivationModifier
    {
        public void Apply(Tensor activations, Rng rng) => f(activations, rng);
    }
}
