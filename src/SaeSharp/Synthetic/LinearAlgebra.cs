namespace SaeSharp.Synthetic;

/// <summary>Small dense float64 linear algebra for correlation matrices (sizes up to a few thousand).</summary>
public static class LinearAlgebra
{
    /// <summary>
    /// Lower-triangular L with A = L·Lᵀ for a symmetric [n, n] matrix (row-major), or null when A is not
    /// positive definite.
    /// </summary>
    public static double[]? Cholesky(ReadOnlySpan<double> a, int n)
    {
        if (a.Length != n * n) throw new ArgumentException($"matrix has {a.Length} elements, expected {n}x{n}");
        var l = new double[n * n];
        for (int j = 0; j < n; j++)
        {
            double d = a[j * n + j];
            for (int k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
            if (!(d > 0)) return null;
            double ljj = Math.Sqrt(d);
            l[j * n + j] = ljj;
            for (int i = j + 1; i < n; i++)
            {
                double s = a[i * n + j];
                for (int k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
                l[i * n + j] = s / ljj;
            }
        }
        return l;
    }

    /// <summary>
    /// Eigen-decomposition of a symmetric [n, n] matrix by cyclic Jacobi rotations. Returns eigenvalues in
    /// ascending order and eigenvectors as the columns of a row-major [n, n] matrix, in the same order.
    /// </summary>
    public static (double[] Values, double[] Vectors) SymmetricEigen(ReadOnlySpan<double> matrix, int n, int maxSweeps = 100)
    {
        if (matrix.Length != n * n) throw new ArgumentException($"matrix has {matrix.Length} elements, expected {n}x{n}");
        var a = matrix.ToArray();
        var v = new double[n * n];
        for (int i = 0; i < n; i++) v[i * n + i] = 1;
        double scale = 0;
        foreach (double x in a) scale += x * x;
        for (int sweep = 0; sweep < maxSweeps; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++)
                for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
            if (off <= 1e-26 * Math.Max(scale, 1e-300)) break; // off-diagonal norm below 1e-13 of the whole
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = a[p * n + q];
                    if (Math.Abs(apq) < 1e-300) continue;
                    double app = a[p * n + p], aqq = a[q * n + q];
                    double theta = (aqq - app) / (2 * apq);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    // Rotate rows/columns p and q of A (kept symmetric), and columns of V.
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[k * n + p], akq = a[k * n + q];
                        a[k * n + p] = c * akp - s * akq;
                        a[k * n + q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[p * n + k], aqk = a[q * n + k];
                        a[p * n + k] = c * apk - s * aqk;
                        a[q * n + k] = s * apk + c * aqk;
                    }
                    a[p * n + q] = a[q * n + p] = 0;
                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v[k * n + p], vkq = v[k * n + q];
                        v[k * n + p] = c * vkp - s * vkq;
                        v[k * n + q] = s * vkp + c * vkq;
                    }
                }
        }
        var order = Enumerable.Range(0, n).OrderBy(i => a[i * n + i]).ToArray();
        var values = new double[n];
        var vectors = new double[n * n];
        for (int j = 0; j < n; j++)
        {
            values[j] = a[order[j] * n + order[j]];
            for (int k = 0; k < n; k++) vectors[k * n + j] = v[k * n + order[j]];
        }
        return (values, vectors);
    }
}

/// <summary>
/// The standard normal CDF and quantile. The quantile starts from Acklam's rational approximation and is polished by
/// two Halley steps on Φ, so it is accurate to about 1e-14 relative.
/// </summary>
public static class NormalQuantile
{
    private static readonly double[] A = { -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00 };
    private static readonly double[] B = { -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155833025e+01 };
    private static readonly double[] C = { -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549671348404910e+00, 4.374664141464968e+00, 2.938163982698783e+00 };
    private static readonly double[] D = { 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00 };
    private const double PLow = 0.02425;

    /// <summary>Φ⁻¹(p): −∞ at 0, +∞ at 1; p outside [0, 1] or NaN throws.</summary>
    public static double Inverse(double p)
    {
        if (!(p >= 0 && p <= 1)) throw new ArgumentOutOfRangeException(nameof(p), $"probability {p} is outside [0, 1]");
        if (p == 0) return double.NegativeInfinity;
        if (p == 1) return double.PositiveInfinity;
        double x = Initial(p);
        for (int it = 0; it < 2; it++)
        {
            // Halley's method on Φ(x) − p; work in the tail nearer to x so small probabilities keep their precision.
            double e = x <= 0 ? Cdf(x) - p : (1 - p) - Cdf(-x); // Φ(x) − p = (1 − p) − Φ(−x)
            double u = e * Math.Sqrt(2 * Math.PI) * Math.Exp(0.5 * x * x);
            x -= u / (1 + 0.5 * x * u);
        }
        return x;
    }

    /// <summary>Φ(x), accurate in relative terms in the lower tail.</summary>
    public static double Cdf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double z = Math.Abs(x) / Math.Sqrt(2);
        double erfc;
        if (z < 3)
        {
            // erf(z) = 2/√π·e^{−z²}·Σ 2ⁿ z^{2n+1} / (1·3···(2n+1)): positive terms, no cancellation.
            double term = z, sum = z;
            for (int n = 1; n < 200 && term > 1e-17 * sum; n++) { term *= 2 * z * z / (2 * n + 1); sum += term; }
            erfc = 1 - 2 / Math.Sqrt(Math.PI) * Math.Exp(-z * z) * sum;
        }
        else
        {
            // erfc(z) = e^{−z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))), evaluated from the tail.
            double f = z;
            for (int k = 80; k >= 1; k--) f = z + k / 2.0 / f;
            erfc = Math.Exp(-z * z) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? 0.5 * erfc : 1 - 0.5 * erfc;
    }

    private static double Initial(double p)
    {
        if (p < PLow)
        {
            double q = Math.Sqrt(-2 * Math.Log(p));
            return (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) /
                   ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1);
        }
        if (p > 1 - PLow)
        {
            double q = Math.Sqrt(-2 * Math.Log(1 - p));
            return -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) /
                    ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1);
        }
        double r = p - 0.5, r2 = r * r;
        return (((((A[0] * r2 + A[1]) * r2 + A[2]) * r2 + A[3]) * r2 + A[4]) * r2 + A[5]) * r /
               (((((B[0] * r2 + B[1]) * r2 + B[2]) * r2 + B[3]) * r2 + B[4]) * r2 + 1);
    }
}
