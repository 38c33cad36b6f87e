using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>
/// SAELens run-time activation normalisation as a per-row affine map: the SAE sees x̃ = (x − shift)/inScale and its
/// output y leaves as y·outScale + shift. constant_norm_rescale: inScale = outScale = ‖x‖/√d_in, shift 0;
/// layer_norm: shift = mean, inScale = std + 1e-5, outScale = std (unbiased std, as torch.std).
/// </summary>
public sealed class ActivationNorm
{
    public const double LayerNormEps = 1e-5;

    private ActivationNorm(double[] inScale, double[] outScale, double[]? shift)
    {
        InScale = inScale; OutScale = outScale; Shift = shift;
    }

    public IReadOnlyList<double> InScale { get; }
    public IReadOnlyList<double> OutScale { get; }
    public IReadOnlyList<double>? Shift { get; }

    /// <summary>The normalisation of rows of <paramref name="x"/> for a cfg normalize_activations mode; null when the forward does nothing.</summary>
    public static ActivationNorm? For(string mode, Tensor x)
    {
        int b = x.Rows, d = x.Cols;
        switch (mode)
        {
            case "none" or "expected_average_only_in": return null;
            case "constant_norm_rescale":
            {
                var s = new double[b];
                for (int r = 0; r < b; r++)
                {
                    double n = Math.Sqrt(TensorPrimitives.Dot(x.Row(r), x.Row(r)));
                    s[r] = n > 0 ? n / Math.Sqrt(d) : 1; // a zero row stays zero
                }
                return new ActivationNorm(s, s, null);
            }
            case "layer_norm":
            {
                var mu = new double[b]; var sIn = new double[b]; var sOut = new double[b];
                for (int r = 0; r < b; r++)
                {
                    var row = x.Row(r);
                    double m = 0; foreach (float v in row) m += v; m /= d;
                    double ss = 0; foreach (float v in row) ss += (v - m) * (v - m);
                    double std = d > 1 ? Math.Sqrt(ss / (d - 1)) : 0;
                    mu[r] = m; sIn[r] = std + LayerNormEps; sOut[r] = std;
                }
                return new ActivationNorm(sIn, sOut, mu);
            }
            default: throw new ArgumentException($"cfg 'normalize_activations': unknown mode '{mode}'");
        }
    }

    /// <summary>A normalised copy of x: (x − shift)/inScale per row.</summary>
    public Tensor Normalize(Tensor x)
    {
        var o = Tensor.Uninitialized(x.Rows, x.Cols);
        for (int r = 0; r < x.Rows; r++)
        {
            var src = x.Row(r); var dst = o.Row(r);
            double m = Shift?[r] ?? 0, s = InScale[r];
            for (int i = 0; i < src.Length; i++) dst[i] = (float)((src[i] - m) / s);
        }
        return o;
    }

    /// <summary>y·outScale (+ shift) per row, in place.</summary>
    public void Denormalize(Tensor y, bool shift = true)
    {
        for (int r = 0; r < y.Rows; r++)
        {
            var row = y.Row(r);
            double s = OutScale[r], m = shift ? Shift?[r] ?? 0 : 0;
            for (int i = 0; i < row.Length; i++) row[i] = (float)(row[i] * s + m);
        }
    }

    /// <summary>Multiplies each row by its outScale in place (the chain rule through <see cref="Denormalize"/>).</summary>
    public void ScaleRows(Tensor g)
    {
        for (int r = 0; r < g.Rows; r++) TensorPrimitives.Multiply(g.Row(r), (float)OutScale[r], g.Row(r));
    }
}
