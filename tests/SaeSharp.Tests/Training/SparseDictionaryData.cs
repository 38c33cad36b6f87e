using SaeSharp.Tensors;

namespace SaeSharp.Tests.Training;

/// <summary>Activations from a known sparse dictionary, shared by the trainer and CLI tests.</summary>
internal static class SparseDictionaryData
{
    /// <summary>24 random directions in <paramref name="d"/> dimensions, each active with p = 0.08 and magnitude in [1, 2).</summary>
    public static Tensor Sample(int rows, ulong seed, int d = 16)
    {
        var rng = new Rng(seed);
        var dict = new Tensor(24, d);
        rng.FillNormal(dict.Span);
        var f = new Tensor(rows, 24);
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < 24; i++)
                if (rng.Bernoulli(0.08)) f[r, i] = (float)(1 + rng.NextDouble());
        return Gemm.MatMul(f, dict, Compute.All);
    }
}
