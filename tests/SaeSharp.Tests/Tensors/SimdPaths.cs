using SaeSharp.Tensors;

namespace SaeSharp.Tests.Tensors;

/// <summary>
/// The vector widths of the hand-vectorised kernels, for theories that run each path. V512 runs on every machine:
/// where Vector512 is not hardware accelerated (AVX2-only x64, ARM) the runtime emulates it in software, slowly but
/// with the same results, so its path is tested here too.
/// </summary>
public static class SimdPaths
{
    public static TheoryData<string> Widths => new(Enum.GetNames<SimdWidth>());

    internal static SimdWidth Parse(string width) => Enum.Parse<SimdWidth>(width);

    /// <summary>Lengths that are not multiples of any width (and some shorter than all of them).</summary>
    public static readonly int[] AwkwardLengths = [1, 3, 7, 15, 17, 33, 63, 101, 1031];

    /// <summary>
    /// Random values with the special cases a vector path could get wrong mixed in: zeros of both signs, NaN,
    /// infinities, subnormals, ties.
    /// </summary>
    public static float[] Values(int n, Rng rng, double specialShare = 0.2)
    {
        float[] specials = [0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -1e-40f, 1f, -1f, 0.5f];
        var v = new float[n];
        for (int i = 0; i < n; i++)
            v[i] = rng.Bernoulli(specialShare) ? specials[rng.NextInt(specials.Length)] : (float)(rng.NextDouble() * 4 - 2);
        return v;
    }
}
