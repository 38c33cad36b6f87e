namespace SaeSharp.Synthetic;

/// <summary>Per-feature firing probabilities and magnitude profiles.</summary>
public static class Profiles
{
    private static void CheckRange(int n, double min, double max, string what)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"num_features must be positive, got {n}");
        if (!(min >= 0 && min <= max && max <= 1)) throw new ArgumentException($"{what}: need 0 <= min ({min}) <= max ({max}) <= 1");
    }

    /// <summary>1/rank^exponent (rank from 1) min-max rescaled into [pMin, pMax]: feature 0 fires most.</summary>
    public static float[] Zipfian(int n, double exponent, double pMin, double pMax)
    {
        CheckRange(n, pMin, pMax, "zipfian firing probabilities");
        if (!(exponent > 0) || double.IsInfinity(exponent)) throw new ArgumentOutOfRangeException(nameof(exponent), $"zipf exponent must be positive and finite, got {exponent}");
        var raw = new double[n];
        for (int i = 0; i < n; i++) raw[i] = Math.Pow(i + 1, -exponent);
        double lo = raw[^1], hi = raw[0];
        return raw.Select(r => (float)(hi == lo ? pMax : pMin + (pMax - pMin) * (r - lo) / (hi - lo))).ToArray();
    }

    /// <summary>Linearly from <paramref name="start"/> (feature 0) to <paramref name="end"/> (last feature).</summary>
    public static float[] Linear(int n, double start, double end)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"num_features must be positive, got {n}");
        if (!double.IsFinite(start) || !double.IsFinite(end)) throw new ArgumentException($"linear profile ends must be finite, got {start} and {end}");
        return Enumerable.Range(0, n).Select(i => (float)(n == 1 ? start : start + (end - start) * i / (n - 1))).ToArray();
    }

    /// <summary>Firing probabilities linear from pMax (feature 0) down to pMin.</summary>
    public static float[] LinearProbabilities(int n, double pMin, double pMax)
    {
        CheckRange(n, pMin, pMax, "linear firing probabilities");
        return Linear(n, pMax, pMin);
    }

    /// <summary>Uniform in [pMin, pMax].</summary>
    public static float[] RandomProbabilities(int n, double pMin, double pMax, SaeSharp.Tensors.Rng rng)
    {
        CheckRange(n, pMin, pMax, "random firing probabilities");
        return Enumerable.Range(0, n).Select(_ => (float)rng.Uniform(pMin, pMax)).ToArray();
    }

    public static float[] Constant(int n, double value)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"num_features must be positive, got {n}");
        if (!double.IsFinite(value)) throw new ArgumentException($"constant profile value must be finite, got {value}");
        return Enumerable.Repeat((float)value, n).ToArray();
    }

    /// <summary>Geometric from <paramref name="start"/> to <paramref name="end"/> (both positive).</summary>
    public static float[] Exponential(int n, double start, double end)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"num_features must be positive, got {n}");
        if (!(start > 0 && end > 0) || double.IsInfinity(start) || double.IsInfinity(end))
            throw new ArgumentException($"exponential profile ends must be positive and finite, got {start} and {end}");
        return Enumerable.Range(0, n).Select(i => (float)(n == 1 ? start : start * Math.Pow(end / start, (double)i / (n - 1)))).ToArray();
    }

    /// <summary>|mean + std·N(0, 1)| per feature.</summary>
    public static float[] FoldedNormal(int n, double mean, double std, SaeSharp.Tensors.Rng rng)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"num_features must be positive, got {n}");
        if (!double.IsFinite(mean) || !(std >= 0) || double.IsInfinity(std)) throw new ArgumentException($"folded normal needs finite mean and std >= 0, got {mean}, {std}");
        return Enumerable.Range(0, n).Select(_ => (float)Math.Abs(rng.Normal(mean, std))).ToArray();
    }
}
