using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Models;

/// <summary>
/// A linear layer y = x·W(ᵀ) + b over the weight exactly as the checkpoint stores it: <c>[out, in]</c>
/// (nn.Linear, multiplied with Trans.Yes) or <c>[in, out]</c> (GPT-2 Conv1D, Trans.No). Never copied.
/// </summary>
public sealed class Linear
{
    public Tensor Weight { get; }
    public Tensor? Bias { get; }
    /// <summary>True when <see cref="Weight"/> is stored [out, in].</summary>
    public bool OutIn { get; }
    public int In { get; }
    public int Out { get; }

    public Linear(Tensor weight, Tensor? bias, bool outIn)
    {
        if (weight.Rank != 2) throw new ArgumentException($"linear weight must be 2-D, got [{weight.ShapeString}]");
        Weight = weight; Bias = bias; OutIn = outIn;
        Out = outIn ? weight.Dim(0) : weight.Dim(1);
        In = outIn ? weight.Dim(1) : weight.Dim(0);
        if (bias is not null && bias.Length != Out) throw new ArgumentException($"bias has {bias.Length} elements, layer has {Out} outputs");
    }

    /// <summary>y[rows, Out] = x[rows, In]·W + b.</summary>
    public void Apply(Tensor x, Tensor y, Compute compute)
    {
        int rows = x.Rows;
        if (x.Cols != In) throw new ArgumentException($"linear input has {x.Cols} columns, layer expects {In}");
        if (y.Rows != rows || y.Cols != Out) throw new ArgumentException($"linear output is [{y.ShapeString}], expected [{rows}, {Out}]");
        Gemm.Multiply(Trans.No, OutIn ? Trans.Yes : Trans.No, rows, Out, In, 1f, x.Span, In, Weight.Span, Weight.Cols, 0f, y.Span, Out, compute);
        if (Bias is not null) Ops.AddRowVector(y.Reshape(rows, Out), Bias.Span, compute: compute);
    }
}

/// <summary>A LayerNorm or RMSNorm's gain and (LayerNorm only, optional) bias.</summary>
public sealed record NormWeights(Tensor Gain, Tensor? Bias);

/// <summary>One transformer block's parameters.</summary>
public sealed class BlockWeights
{
    public required NormWeights Ln1 { get; init; }
    public required NormWeights Ln2 { get; init; }
    /// <summary>Separate projections (Llama) — or null when <see cref="Qkv"/> is fused.</summary>
    public Linear? Q { get; init; }
    public Linear? K { get; init; }
    public Linear? V { get; init; }
    /// <summary>Fused projection; its output columns follow <see cref="QkvLayout"/>.</summary>
    public Linear? Qkv { get; init; }
    public FusedQkv QkvLayout { get; init; }
    public required Linear O { get; init; }
    /// <summary>First MLP projection (the gate for gated MLPs).</summary>
    public required Linear In { get; init; }
    /// <summary>Up projection of a gated MLP (multiplied by act(gate)); null otherwise.</summary>
    public Linear? Up { get; init; }
    public required Linear Out { get; init; }
}

/// <summary>Column order of a fused QKV projection's output.</summary>
public enum FusedQkv
{
    None,
    /// <summary>[q | k | v], each NHeads·DHead wide (GPT-2 c_attn).</summary>
    Blocks,
    /// <summary>Per head [q_h | k_h | v_h] (GPT-NeoX query_key_value).</summary>
    PerHead,
}

/// <summary>All parameters of a model.</summary>
public sealed class ModelWeights
{
    /// <summary>Token embedding [vocab, d].</summary>
    public required Tensor Embed { get; init; }
    /// <summary>Learned position embedding [positions, d] or null.</summary>
    public Tensor? PosEmbed { get; init; }
    public required BlockWeights[] Blocks { get; init; }
    public required NormWeights LnFinal { get; init; }
    /// <summary>Unembedding stored [vocab, d] (the embedding itself when tied).</summary>
    public required Tensor Unembed { get; init; }
    public Tensor? UnembedBias { get; init; }
}

internal static class Kernels
{
    /// <summary>
    /// Normalises each row of x into <paramref name="normalized"/> (TransformerLens hook_normalized: before the gain),
    /// statistics in float64.
    /// </summary>
    public static void Normalize(Tensor x, Tensor normalized, NormKind kind, float eps, Compute compute)
    {
        int d = x.Cols;
        compute.ForRange(x.Rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var src = x.Row(r);
                var dst = normalized.Row(r);
                if (kind == NormKind.RmsNorm)
                {
                    double ss = 0;
                    foreach (float v in src) ss += (double)v * v;
                    float inv = (float)(1.0 / Math.Sqrt(ss / d + eps));
                    TensorPrimitives.Multiply(src, inv, dst);
                }
                else
                {
                    double sum = 0;
                    foreach (float v in src) sum += v;
                    double mean = sum / d, ss = 0;
                    foreach (float v in src) { double c = v - mean; ss += c * c; }
                    float inv = (float)(1.0 / Math.Sqrt(ss / d + eps));
                    TensorPrimitives.Subtract(src, (float)mean, dst);
                    TensorPrimitives.Multiply(dst, inv, dst);
                }
            }
        });
    }

    /// <summary>out = normalized·gain + bias, row by row.</summary>
    public static void Affine(Tensor normalized, NormWeights w, Tensor output)
    {
        for (int r = 0; r < normalized.Rows; r++)
        {
            var dst = output.Row(r);
            TensorPrimitives.Multiply(normalized.Row(r), w.Gain.Span, dst);
            if (w.Bias is not null) TensorPrimitives.Add(dst, w.Bias.Span, dst);
        }
    }

    /// <summary>y = act(x); x and y may be the same span.</summary>
    public static void Activate(ReadOnlySpan<float> x, Span<float> y, Activation act)
    {
        switch (act)
        {
            case Activation.Silu:
                {
                    // x·sigmoid(x), vectorised; float sigmoid is within an ulp or two, far inside any tolerance here.
                    Span<float> tmp = x.Length <= 4096 ? stackalloc float[x.Length] : new float[x.Length];
                    TensorPrimitives.Sigmoid(x, tmp);
                    TensorPrimitives.Multiply(x, tmp, y);
                    break;
                }
            case Activation.GeluTanh:
                {
                    // 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))
                    Span<float> tmp = x.Length <= 4096 ? stackalloc float[x.Length] : new float[x.Length];
                    TensorPrimitives.Multiply(x, x, tmp);
                    TensorPrimitives.Multiply(tmp, 0.044715f, tmp);
                    TensorPrimitives.Add(tmp, 1f, tmp);
                    TensorPrimitives.Multiply(tmp, x, tmp);
                    TensorPrimitives.Multiply(tmp, 0.7978845608028654f, tmp);
                    TensorPrimitives.Tanh(tmp, tmp);
                    TensorPrimitives.Add(tmp, 1f, tmp);
                    TensorPrimitives.Multiply(tmp, x, tmp);
                    TensorPrimitives.Multiply(tmp, 0.5f, y);
                    break;
                }
            case Activation.GeluExact:
                for (int i = 0; i < x.Length; i++) { double v = x[i]; y[i] = (float)(0.5 * v * (1 + Erf(v * 0.7071067811865476))); }
                break;
            case Activation.Relu:
                TensorPrimitives.Max(x, 0f, y);
                break;
        }
    }

    /// <summary>
    /// The error function to about 1e-15: Maclaurin series for |x| &lt; 3, continued fraction for erfc beyond
    /// (.NET has no Math.Erf).
    /// </summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 3)
        {
            // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
            double x2 = x * x, term = x, sum = x;
            for (int n = 1; n < 80; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            return 1.1283791670955126 * sum;
        }
        if (ax > 6) return Math.Sign(x);
        // erfc(x) = exp(-x²)/sqrt(pi) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated bottom-up
        double f = ax;
        for (int k = 60; k >= 1; k--) f = ax + k * 0.5 / f;
        double erfc = Math.Exp(-ax * ax) / (1.7724538509055159 * f);
        return x > 0 ? 1 - erfc : erfc - 1;
    }
}
