using System.Numerics.Tensors;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Synthetic;

public class DictionaryAndProfileTests
{
    private static float MaxAbsOffDiagonalCos(Tensor v)
    {
        var c = SyntheticEvals.AbsCosine(v, v, compute: Compute.All);
        float m = 0;
        for (int i = 0; i < v.Rows; i++) for (int j = 0; j < v.Rows; j++) if (i != j) m = Math.Max(m, c[i, j]);
        return m;
    }

    [Fact]
    public void RandomDictionaryHasUnitRowsAndRequestedBias()
    {
        var d = FeatureDictionary.CreateRandom(20, 8, new Rng(1), Compute.All, DictionaryBias.GivenNorm, biasNorm: 3);
        foreach (float n in Ops.RowNorms(d.FeatureVectors)) Assert.Equal(1f, n, 5);
        Assert.Equal(3f, TensorPrimitives.Norm(d.Bias.Span), 4);
        Assert.Equal(1f, TensorPrimitives.Norm(FeatureDictionary.CreateRandom(4, 8, new Rng(1), Compute.All, DictionaryBias.RandomUnit).Bias.Span), 5);
        Assert.Equal(0f, TensorPrimitives.Norm(FeatureDictionary.CreateRandom(4, 8, new Rng(1), compute: Compute.All).Bias.Span));
        Assert.Throws<ArgumentOutOfRangeException>(() => FeatureDictionary.CreateRandom(0, 8, new Rng(1), compute: Compute.All));
    }

    [Fact]
    public void SparseForwardEqualsDenseForward()
    {
        var d = FeatureDictionary.CreateRandom(30, 12, new Rng(2), Compute.All, DictionaryBias.RandomUnit);
        var f = new ActivationGenerator(Profiles.Constant(30, 0.2), stdMagnitudes: Profiles.Constant(30, 0.5)).Sample(40, new Rng(3), compute: Compute.All);
        var dense = d.Forward(f, Compute.All);
        var sparse = d.ForwardSparse(f, compute: Compute.All);
        for (int i = 0; i < dense.Length; i++) Assert.Equal(dense.Span[i], sparse.Span[i], 4);
        // Row r is Σⱼ f[r, j]·vⱼ + b.
        var expect = d.Bias.ToArray();
        for (int j = 0; j < 30; j++) for (int k = 0; k < 12; k++) expect[k] += f[0, j] * d.FeatureVectors[j, k];
        for (int k = 0; k < 12; k++) Assert.Equal(expect[k], dense[0, k], 4);
        Assert.Throws<ArgumentException>(() => d.Forward(new Tensor(2, 29), Compute.All));
    }

    [Fact]
    public void OrthogonalizationPushesVectorsApart()
    {
        var v = Tensor.Uninitialized(16, 32);
        new Rng(4).FillNormal(v.Span);
        FeatureDictionary.NormalizeRows(v);
        float before = MaxAbsOffDiagonalCos(v);
        FeatureDictionary.Orthogonalize(v, 300, 0.01f, compute: Compute.All);
        float after = MaxAbsOffDiagonalCos(v);
        Assert.True(before > 0.3f, $"random start max |cos| {before}");
        Assert.True(after < 0.05f, $"max |cos| after orthogonalisation {after}");
        foreach (float n in Ops.RowNorms(v)) Assert.Equal(1f, n, 5);
    }

    [Fact]
    public void OrthogonalityGradientMatchesFiniteDifferences()
    {
        const int n = 5, d = 3;
        const float target = 0.1f;
        var v = Tensor.Uninitialized(n, d);
        new Rng(8).FillNormal(v.Span, 0, 0.7f);
        var x = v.ToArray().Select(f => (double)f).ToArray();
        double Loss(double[] w)
        {
            double l = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                {
                    double g = 0;
                    for (int k = 0; k < d; k++) g += w[i * d + k] * w[j * d + k];
                    l += i == j ? n * (g - 1) * (g - 1) : (g - target) * (g - target);
                }
            return l;
        }
        var grad = new Tensor(n, d);
        double loss = FeatureDictionary.OrthogonalityLoss(v, grad, target, Tensor.Uninitialized(2, n), compute: Compute.All); // chunks of 2 rows
        Assert.Equal(Loss(x), loss, 3);
        const double h = 1e-5;
        for (int p = 0; p < x.Length; p++)
        {
            var plus = (double[])x.Clone(); plus[p] += h;
            var minus = (double[])x.Clone(); minus[p] -= h;
            double fd = (Loss(plus) - Loss(minus)) / (2 * h);
            Assert.True(Math.Abs(fd - grad.Span[p]) <= 1e-3 * Math.Max(1, Math.Abs(fd)), $"element {p}: finite difference {fd}, analytic {grad.Span[p]}");
        }
    }

    [Fact]
    public void OrthogonalizationIsTheSameInChunks()
    {
        var a = Tensor.Uninitialized(37, 10);
        new Rng(5).FillNormal(a.Span);
        var b = a.Clone();
        double la = FeatureDictionary.Orthogonalize(a, 20, 0.01f, chunkRows: 1024, compute: Compute.All);
        double lb = FeatureDictionary.Orthogonalize(b, 20, 0.01f, chunkRows: 6, compute: Compute.All);
        Assert.Equal(la, lb, 3);
        for (int i = 0; i < a.Length; i++) Assert.Equal(a.Span[i], b.Span[i], 4);
    }

    [Fact]
    public void OrthogonalizationLossDecreases()
    {
        var v = Tensor.Uninitialized(40, 8);
        new Rng(6).FillNormal(v.Span);
        double l1 = FeatureDictionary.Orthogonalize(v.Clone(), 1, 0.01f, compute: Compute.All);
        double l50 = FeatureDictionary.Orthogonalize(v.Clone(), 50, 0.01f, compute: Compute.All);
        Assert.True(l50 < 0.8 * l1, $"loss {l1} -> {l50}");
    }

    [Fact]
    public void ZipfianProfileSpansRangeAndDecreases()
    {
        var p = Profiles.Zipfian(100, 0.5, 5e-4, 0.4);
        Assert.Equal(0.4f, p[0], 6);
        Assert.Equal(5e-4f, p[^1], 6);
        for (int i = 1; i < p.Length; i++) Assert.True(p[i] < p[i - 1]);
        // Min-max rescaling of 1/rank^a: p(rank 4) = pmin + (pmax − pmin)·(1/2 − 1/10)/(1 − 1/10).
        Assert.Equal(5e-4 + (0.4 - 5e-4) * (0.5 - 0.1) / 0.9, p[3], 6);
        Assert.Throws<ArgumentException>(() => Profiles.Zipfian(10, 1, 0.5, 0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Profiles.Zipfian(10, 0, 0.1, 0.5));
    }

    [Fact]
    public void MagnitudeProfiles()
    {
        Assert.Equal([5f, 4.5f, 4f], Profiles.Linear(3, 5, 4));
        var e = Profiles.Exponential(3, 1, 4);
        Assert.Equal(1f, e[0], 6); Assert.Equal(2f, e[1], 6); Assert.Equal(4f, e[2], 6);
        var fnorm = Profiles.FoldedNormal(2000, 0.5, 0.5, new Rng(1));
        Assert.All(fnorm, x => Assert.True(x >= 0));
        // E|N(0.5, 0.5²)| = 0.5·√(2/π)·e^{−1/2} + 0.5·(1 − 2Φ(−1)) ≈ 0.2420 + 0.3413 = 0.5833.
        Assert.Equal(0.5833, fnorm.Average(), 0.03);
        var r = Profiles.RandomProbabilities(500, 0.1, 0.2, new Rng(2));
        Assert.All(r, x => Assert.InRange(x, 0.1f, 0.2f));
        Assert.Equal([0.3f, 0.2f, 0.1f], Profiles.LinearProbabilities(3, 0.1, 0.3).Select(x => MathF.Round(x, 6)));
        Assert.Throws<ArgumentException>(() => Profiles.Exponential(3, 0, 1));
    }

    [Fact]
    public void CorrelationFromPairsIsSymmetricWithUnitDiagonal()
    {
        var c = Correlations.FromPairs(4, new Dictionary<(int, int), double> { [(0, 2)] = 0.3, [(3, 1)] = -0.2 }, defaultCorrelation: 0.1);
        Assert.Equal(0.3f, c[0, 2], 6); Assert.Equal(0.3f, c[2, 0], 6);
        Assert.Equal(-0.2f, c[1, 3], 6); Assert.Equal(0.1f, c[0, 1], 6);
        for (int i = 0; i < 4; i++) Assert.Equal(1f, c[i, i]);
    }

    [Fact]
    public void CorrelationFromPairsFixesIndefiniteMatrices()
    {
        var pairs = new Dictionary<(int, int), double> { [(0, 1)] = 0.9, [(0, 2)] = 0.9, [(1, 2)] = -0.9 };
        var c = Correlations.FromPairs(3, pairs);
        var a = c.ToArray().Select(x => (double)x).ToArray();
        Assert.NotNull(LinearAlgebra.Cholesky(a, 3));
        for (int i = 0; i < 3; i++) { Assert.Equal(1f, c[i, i], 5); for (int j = 0; j < 3; j++) Assert.Equal(c[i, j], c[j, i], 6); }
        Assert.True(c[1, 2] > -0.9f && c[0, 1] < 0.9f);
        _ = new FullCorrelation(c); // usable by the generator
        Assert.Throws<ArgumentException>(() => Correlations.FromPairs(3, new Dictionary<(int, int), double> { [(0, 3)] = 0.1 }));
        Assert.Throws<ArgumentException>(() => Correlations.FromPairs(3, new Dictionary<(int, int), double> { [(0, 1)] = 1.5 }));
    }

    [Fact]
    public void RandomCorrelationsFollowRatiosAndBounds()
    {
        var pairs = Correlations.RandomPairs(10, new Rng(3), positiveRatio: 0.25, uncorrelatedRatio: 0.3, minStrength: 0.2, maxStrength: 0.4);
        // 45 pairs, int(45·0.3) = 13 uncorrelated, 32 correlated, int(32·0.25) = 8 positive.
        Assert.Equal(32, pairs.Count);
        Assert.Equal(8, pairs.Values.Count(v => v > 0));
        Assert.All(pairs, kv => { Assert.True(kv.Key.I < kv.Key.J); Assert.InRange(Math.Abs(kv.Value), 0.2, 0.4); });
        Assert.Throws<ArgumentOutOfRangeException>(() => Correlations.RandomPairs(5, new Rng(1), positiveRatio: 1.2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Correlations.RandomPairs(5, new Rng(1), uncorrelatedRatio: -0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Correlations.RandomPairs(5, new Rng(1), minStrength: -0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Correlations.RandomPairs(5, new Rng(1), maxStrength: 1.1));
        Assert.Throws<ArgumentException>(() => Correlations.RandomPairs(5, new Rng(1), minStrength: 0.5, maxStrength: 0.4));
        var m = Correlations.RandomMatrix(12, new Rng(4));
        Assert.NotNull(LinearAlgebra.Cholesky(m.ToArray().Select(x => (double)x).ToArray(), 12));
    }

    [Fact]
    public void RandomLowRankHasUnitVariances()
    {
        var lr = Correlations.RandomLowRank(200, 5, 0.6f, new Rng(5));
        for (int i = 0; i < 200; i++)
        {
            float v = TensorPrimitives.Dot(lr.Factor.Row(i), lr.Factor.Row(i)) + lr.Diagonal[i];
            Assert.Equal(1f, v, 4);
            Assert.True(lr.Diagonal[i] >= 0.0099f);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Correlations.RandomLowRank(10, 0, 0.1f, new Rng(1)));
    }
}
