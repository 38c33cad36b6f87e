using SaeSharp.Tensors;

namespace SaeSharp.Synthetic;

/// <summary>Builders of correlation matrices for <see cref="ActivationGenerator"/> (SAELens's <c>synthetic.correlation</c>).</summary>
public static class Correlations
{
    /// <summary>
    /// An [n, n] correlation matrix with <paramref name="defaultCorrelation"/> off the diagonal and the given pair
    /// correlations (set symmetrically). If the result is not positive semi-definite (an eigenvalue below −1e-6) its
    /// eigenvalues are clamped to <paramref name="minEigenvalue"/> and it is rescaled to a unit diagonal.
    /// </summary>
    public static Tensor FromPairs(int numFeatures, IReadOnlyDictionary<(int I, int J), double>? correlations, double defaultCorrelation = 0,
        double minEigenvalue = 1e-6)
    {
        if (numFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(numFeatures), $"num_features must be positive, got {numFeatures}");
        int n = numFeatures;
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) a[i * n + j] = i == j ? 1 : defaultCorrelation;
        if (correlations is not null)
            foreach (var ((i, j), rho) in correlations)
            {
                if ((uint)i >= (uint)n || (uint)j >= (uint)n) throw new ArgumentException($"correlation pair ({i}, {j}) is outside [0, {n})");
                if (i == j) throw new ArgumentException($"correlation pair ({i}, {j}) is on the diagonal");
                if (!(Math.Abs(rho) <= 1)) throw new ArgumentException($"correlation for ({i}, {j}) is {rho}, expected within [-1, 1]");
                a[i * n + j] = a[j * n + i] = rho;
            }
        // Cholesky succeeding proves positive definiteness cheaply; only otherwise look at the eigenvalues.
        if (LinearAlgebra.Cholesky(a, n) is null && LinearAlgebra.SymmetricEigen(a, n).Values[0] < -1e-6)
            a = FixToPositiveDefinite(a, n, minEigenvalue);
        var t = Tensor.Uninitialized(n, n);
        for (int i = 0; i < a.Length; i++) t.Span[i] = (float)a[i];
        return t;
    }

    /// <summary>Clamps eigenvalues to at least <paramref name="minEigenvalue"/>, rebuilds, and rescales to a unit diagonal.</summary>
    public static double[] FixToPositiveDefinite(double[] a, int n, double minEigenvalue = 1e-6)
    {
        var (values, vectors) = LinearAlgebra.SymmetricEigen(a, n);
        var fixedM = new double[n * n];
        for (int k = 0; k < n; k++)
        {
            double lam = Math.Max(values[k], minEigenvalue);
            for (int i = 0; i < n; i++)
            {
                double vik = vectors[i * n + k] * lam;
                for (int j = 0; j < n; j++) fixedM[i * n + j] += vik * vectors[j * n + k];
            }
        }
        var d = new double[n];
        for (int i = 0; i < n; i++) d[i] = Math.Sqrt(fixedM[i * n + i]);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) fixedM[i * n + j] = i == j ? 1 : fixedM[i * n + j] / (d[i] * d[j]);
        return fixedM;
    }

    /// <summary>
    /// Random pair correlations: a share <paramref name="uncorrelatedRatio"/> of the n(n−1)/2 pairs stays at zero, of
    /// the rest a share <paramref name="positiveRatio"/> is positive, strengths uniform in [min, max].
    /// </summary>
    public static Dictionary<(int I, int J), double> RandomPairs(int numFeatures, Rng rng, double positiveRatio = 0.5, double uncorrelatedRatio = 0.3,
        double minStrength = 0.1, double maxStrength = 0.8)
    {
        if (!(positiveRatio >= 0 && positiveRatio <= 1)) throw new ArgumentOutOfRangeException(nameof(positiveRatio), $"positive_ratio must be between 0.0 and 1.0, got {positiveRatio}");
        if (!(uncorrelatedRatio >= 0 && uncorrelatedRatio <= 1)) throw new ArgumentOutOfRangeException(nameof(uncorrelatedRatio), $"uncorrelated_ratio must be between 0.0 and 1.0, got {uncorrelatedRatio}");
        if (!(minStrength >= 0)) throw new ArgumentOutOfRangeException(nameof(minStrength), $"min_correlation_strength must be non-negative, got {minStrength}");
        if (!(maxStrength <= 1)) throw new ArgumentOutOfRangeException(nameof(maxStrength), $"max_correlation_strength must be <= 1.0, got {maxStrength}");
        if (minStrength > maxStrength) throw new ArgumentException($"min_correlation_strength ({minStrength}) must be <= max_correlation_strength ({maxStrength})");
        if (numFeatures < 0) throw new ArgumentOutOfRangeException(nameof(numFeatures));
        var pairs = new List<(int, int)>();
        for (int i = 0; i < numFeatures; i++)
            for (int j = i + 1; j < numFeatures; j++) pairs.Add((i, j));
        var result = new Dictionary<(int I, int J), double>();
        if (pairs.Count == 0) return result;
        int correlated = pairs.Count - (int)(pairs.Count * uncorrelatedRatio);
        var chosen = pairs.ToArray();
        rng.Shuffle(chosen.AsSpan());
        int positive = (int)(correlated * positiveRatio);
        var signs = new int[correlated];
        for (int k = 0; k < correlated; k++) signs[k] = k < positive ? 1 : -1;
        rng.Shuffle(signs.AsSpan());
        for (int k = 0; k < correlated; k++) result[chosen[k]] = signs[k] * rng.Uniform(minStrength, maxStrength);
        return result;
    }

    /// <summary><see cref="RandomPairs"/> then <see cref="FromPairs"/>.</summary>
    public static Tensor RandomMatrix(int numFeatures, Rng rng, double positiveRatio = 0.5, double uncorrelatedRatio = 0.3,
        double minStrength = 0.1, double maxStrength = 0.8) =>
        FromPairs(numFeatures, RandomPairs(numFeatures, rng, positiveRatio, uncorrelatedRatio, minStrength, maxStrength));

    /// <summary>
    /// A random low-rank correlation: F [n, rank] with N(0, scale²) entries, rows whose squared norm exceeds
    /// 1 − <paramref name="minDiagonal"/> shrunk to it, and d = 1 − |Fᵢ|² so every variance is 1.
    /// </summary>
    public static LowRankCorrelation RandomLowRank(int numFeatures, int rank, float scale, Rng rng, float minDiagonal = 0.01f)
    {
        if (numFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(numFeatures), $"num_features must be positive, got {numFeatures}");
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), $"rank must be positive, got {rank}");
        if (!(scale >= 0) || !float.IsFinite(scale)) throw new ArgumentOutOfRangeException(nameof(scale), $"correlation scale must be finite and non-negative, got {scale}");
        if (!(minDiagonal > 0 && minDiagonal < 1)) throw new ArgumentOutOfRangeException(nameof(minDiagonal), $"min diagonal must be in (0, 1), got {minDiagonal}");
        var f = Tensor.Uninitialized(numFeatures, rank);
        rng.FillNormal(f.Span, 0, scale);
        var d = new Tensor(numFeatures);
        for (int i = 0; i < numFeatures; i++)
        {
            var row = f.Row(i);
            float sq = System.Numerics.Tensors.TensorPrimitives.Dot(row, row);
            if (sq > 1 - minDiagonal)
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, MathF.Sqrt((1 - minDiagonal) / sq), row);
                sq = System.Numerics.Tensors.TensorPrimitives.Dot(row, row);
            }
            d[i] = Math.Max(0, 1 - sq);
        }
        return new LowRankCorrelation(f, d);
    }
}
