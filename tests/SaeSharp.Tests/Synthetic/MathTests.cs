using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class MathTests
{
    [Theory]
    [InlineData(0.5, 0.0)]
    [InlineData(0.975, 1.959963984540054)]
    [InlineData(0.025, -1.959963984540054)]
    [InlineData(0.8413447460685429, 1.0)]
    [InlineData(1e-4, -3.719016485455709)]
    [InlineData(0.9999, 3.719016485455709)]
    [InlineData(0.3, -0.5244005127080407)]
    public void NormalQuantileMatchesKnownValues(double p, double expected) =>
        Assert.Equal(expected, NormalQuantile.Inverse(p), 10);

    [Theory]
    [InlineData(1e-12)]
    [InlineData(3e-5)]
    [InlineData(0.02)]
    [InlineData(0.6)]
    [InlineData(0.99)]
    public void NormalQuantileInvertsCdf(double p) =>
        Assert.Equal(1.0, NormalQuantile.Cdf(NormalQuantile.Inverse(p)) / p, 10);

    [Fact]
    public void NormalQuantileRejectsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NormalQuantile.Inverse(1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => NormalQuantile.Inverse(double.NaN));
        Assert.Equal(double.PositiveInfinity, NormalQuantile.Inverse(1));
    }

    [Fact]
    public void JacobiEigenReconstructsRandomSymmetricMatrix()
    {
        var rng = new Rng(3);
        int n = 9;
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.Normal();
        var (vals, vecs) = LinearAlgebra.SymmetricEigen(a, n);
        for (int k = 1; k < n; k++) Assert.True(vals[k] >= vals[k - 1]);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double recon = 0, orth = 0;
                for (int k = 0; k < n; k++) { recon += vecs[i * n + k] * vals[k] * vecs[j * n + k]; orth += vecs[k * n + i] * vecs[k * n + j]; }
                Assert.Equal(a[i * n + j], recon, 9);
                Assert.Equal(i == j ? 1 : 0, orth, 9);
            }
    }

    [Fact]
    public void CholeskyFactorsPositiveDefiniteAndRejectsIndefinite()
    {
        double[] a = [4, 2, 2, 3];
        var l = LinearAlgebra.Cholesky(a, 2)!;
        Assert.Equal(2, l[0], 12); Assert.Equal(0, l[1]); Assert.Equal(1, l[2], 12); Assert.Equal(Math.Sqrt(2), l[3], 12);
        Assert.Null(LinearAlgebra.Cholesky([1, 2, 2, 1], 2));
    }
}
