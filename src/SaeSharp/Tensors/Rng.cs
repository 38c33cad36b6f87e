using System.Numerics;

namespace SaeSharp.Tensors;

/// <summary>
/// xoshiro256** seeded through splitmix64: the one random generator of SaeSharp, always passed explicitly.
/// Every draw is built from integer operations, IEEE arithmetic and <see cref="DeterministicMath"/>, so a
/// seed gives the same stream on every machine. The whole state (including a cached normal) is exposed
/// for checkpoints.
/// </summary>
public sealed class Rng
{
    private ulong _s0, _s1, _s2, _s3;
    private double _spareNormal;
    private bool _hasSpare;

    public Rng(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
    }

    private Rng(RngState s) => State = s;

    /// <summary>A generator whose stream is independent of this one's (seeded from it); for worker threads and sub-tasks.</summary>
    public Rng Fork() => new(NextUInt64() ^ 0x9E3779B97F4A7C15UL);

    public RngState State
    {
        get => new(_s0, _s1, _s2, _s3, _hasSpare, _spareNormal);
        set
        {
            if ((value.S0 | value.S1 | value.S2 | value.S3) == 0) throw new ArgumentException("xoshiro state must not be all zero");
            (_s0, _s1, _s2, _s3, _hasSpare, _spareNormal) = (value.S0, value.S1, value.S2, value.S3, value.HasSpareNormal, value.SpareNormal);
        }
    }

    public static Rng FromState(RngState state) => new(state);

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, 1) with 24 random bits.</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

    public double Uniform(double low, double high) => low + (high - low) * NextDouble();

    /// <summary>Uniform integer in [0, n), unbiased (Lemire's method).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), "n must be positive");
        ulong bound = (ulong)n;
        UInt128 m = (UInt128)NextUInt64() * bound;
        ulong low = (ulong)m;
        if (low < bound)
        {
            ulong threshold = (0UL - bound) % bound;
            while (low < threshold)
            {
                m = (UInt128)NextUInt64() * bound;
                low = (ulong)m;
            }
        }
        return (int)(m >> 64);
    }

    /// <summary>Standard normal (Marsaglia polar method; pairs are cached).</summary>
    public double Normal()
    {
        if (_hasSpare) { _hasSpare = false; return _spareNormal; }
        double u, v, s;
        do
        {
            u = 2 * NextDouble() - 1;
            v = 2 * NextDouble() - 1;
            s = u * u + v * v;
        } while (s >= 1 || s == 0);
        double f = Math.Sqrt(-2 * DeterministicMath.Log(s) / s);
        _spareNormal = v * f;
        _hasSpare = true;
        return u * f;
    }

    public double Normal(double mean, double std) => mean + std * Normal();

    public bool Bernoulli(double p) => NextDouble() < p;

    public void FillUniform(Span<float> dst, float low = 0, float high = 1)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = low + (high - low) * NextFloat();
    }

    public void FillNormal(Span<float> dst, float mean = 0, float std = 1)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = (float)(mean + std * Normal());
    }

    /// <summary>One index drawn with probability proportional to <paramref name="weights"/> (non-negative, finite, not all zero).</summary>
    public int Categorical(ReadOnlySpan<double> weights)
    {
        double total = 0;
        foreach (double w in weights)
        {
            if (!(w >= 0) || double.IsInfinity(w)) throw new ArgumentException("weights must be finite and non-negative");
            total += w;
        }
        if (total <= 0) throw new ArgumentException("weights must not all be zero");
        double r = NextDouble() * total, acc = 0;
        int last = 0;
        for (int i = 0; i < weights.Length; i++)
        {
            if (weights[i] <= 0) continue;
            acc += weights[i];
            last = i;
            if (r < acc) return i;
        }
        return last;
    }

    /// <summary>
    /// <paramref name="count"/> indices drawn with probability proportional to the weights, with or without
    /// replacement (torch.multinomial semantics).
    /// </summary>
    public int[] Multinomial(ReadOnlySpan<double> weights, int count, bool replacement)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count));
        var result = new int[count];
        if (replacement)
        {
            // Cumulative table + binary search: O(n + count log n).
            var cdf = new double[weights.Length];
            double total = 0;
            for (int i = 0; i < weights.Length; i++)
            {
                double w = weights[i];
                if (!(w >= 0) || double.IsInfinity(w)) throw new ArgumentException("weights must be finite and non-negative");
                total += w;
                cdf[i] = total;
            }
            if (total <= 0) throw new ArgumentException("weights must not all be zero");
            for (int c = 0; c < count; c++)
            {
                double r = NextDouble() * total;
                int idx = Array.BinarySearch(cdf, r);
                idx = idx < 0 ? ~idx : idx + 1;
                while (idx < cdf.Length - 1 && weights[idx] <= 0) idx++;
                result[c] = Math.Min(idx, cdf.Length - 1);
            }
            return result;
        }
        int positive = 0;
        foreach (double w in weights) if (w > 0) positive++;
        if (count > positive) throw new ArgumentException($"cannot draw {count} distinct indices from {positive} positive weights");
        var left = weights.ToArray();
        for (int c = 0; c < count; c++)
        {
            int i = Categorical(left);
            result[c] = i;
            left[i] = 0;
        }
        return result;
    }

    /// <summary>A uniformly random permutation of [0, n) (Fisher–Yates).</summary>
    public int[] Permutation(int n)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        Shuffle(p.AsSpan());
        return p;
    }

    public void Shuffle<T>(Span<T> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

/// <summary>The complete state of an <see cref="Rng"/>.</summary>
public readonly record struct RngState(ulong S0, ulong S1, ulong S2, ulong S3, bool HasSpareNormal, double SpareNormal);

/// <summary>Elementary functions written with IEEE arithmetic only, so results do not depend on the platform's libm.</summary>
public static class DeterministicMath
{
    private const double Ln2 = 0.6931471805599453;

    /// <summary>Natural logarithm for finite x &gt; 0, to within a few ulp.</summary>
    public static double Log(double x)
    {
        if (!(x > 0) || double.IsInfinity(x)) return x == 0 ? double.NegativeInfinity : double.NaN;
        long bits = BitConverter.DoubleToInt64Bits(x);
        int exp = (int)((bits >> 52) & 0x7FF);
        if (exp == 0)
        {
            // Subnormal: scale into the normal range first.
            return Log(x * 4503599627370496.0) - 52 * Ln2;
        }
        exp -= 1023;
        double m = BitConverter.Int64BitsToDouble((bits & 0x000FFFFFFFFFFFFFL) | 0x3FF0000000000000L); // [1, 2)
        if (m > 1.4142135623730951) { m *= 0.5; exp++; }
        // log(m) = 2 atanh(t), t = (m-1)/(m+1), |t| <= 0.1716: the series converges fast.
        double t = (m - 1) / (m + 1), t2 = t * t, term = t, sum = 0;
        for (int n = 1; n < 60; n += 2)
        {
            double add = term / n;
            sum += add;
            if (Math.Abs(add) < 1e-18 * Math.Abs(sum)) break;
            term *= t2;
        }
        return 2 * sum + exp * Ln2;
    }
}
