using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// The run-time activation normalisations (constant_norm_rescale, layer_norm): a hand-computed case, scale
/// equivariance, and finite-difference gradients of every architecture's losses with the input normalised.
/// </summary>
public class ActivationNormTests
{
    [Fact]
    public void ConstantNormRescaleAndLayerNorm()
    {
        // Identity standard SAE (W_enc = W_dec = I, zero biases) reconstructs any x ≥ 0 exactly, whatever the
        // normalisation, because the output is de-normalised.
        foreach (var mode in new[] { "constant_norm_rescale", "layer_norm" })
        {
            var sae = new StandardSae(new SaeConfig { Architecture = "standard", DIn = 2, DSae = 2, NormalizeActivations = mode }, Compute.All);
            Set(sae.WEnc, 1, 0, 0, 1);
            Set(sae.WDec, 1, 0, 0, 1);
            var x = Tensor.FromArray([3f, 4f], 1, 2);
            var f = sae.Forward(x, new SaeLossOptions { L1Coefficient = 1 });
            if (mode == "constant_norm_rescale")
            {
                // x·√2/‖x‖ = [3, 4]·√2/5
                Near([3 * MathF.Sqrt(2) / 5, 4 * MathF.Sqrt(2) / 5], f.Features!.ToArray());
                Near([3f, 4f], f.Output.ToArray());
                Near(0, f.Losses["mse_loss"]);
            }
            else
            {
                // mean 3.5, unbiased std √0.5; normalised [−0.5, 0.5]/(√0.5 + 1e-5) → codes [0, 0.5/(√0.5 + 1e-5)];
                // output [0, c]·√0.5 + 3.5 = [3.5, 3.5 + 0.5·√0.5/(√0.5 + 1e-5)].
                double s = Math.Sqrt(0.5), c = 0.5 / (s + 1e-5);
                Near([0, (float)c], f.Features!.ToArray());
                Near([3.5f, (float)(3.5 + c * s)], f.Output.ToArray());
                Near(0.5 * 0.5 + (0.5 - c * s) * (0.5 - c * s), f.Losses["mse_loss"]);
            }
        }
    }

    [Theory]
    [InlineData("constant_norm_rescale")]
    [InlineData("layer_norm")]
    public void NormalisedSaesAreScaleEquivariantAndFoldNothing(string mode)
    {
        var sae = RandomSae(new SaeConfig { Architecture = "standard", DIn = 6, DSae = 10, NormalizeActivations = mode }, 51);
        var x = RandomX(4, 6, 52);
        var cx = x.Clone();
        System.Numerics.Tensors.TensorPrimitives.Multiply(cx.Span, 8f, cx.Span);
        var o1 = sae.Forward(x).Output.ToArray(); var o8 = sae.Forward(cx).Output.ToArray();
        // constant_norm_rescale is exactly scale-free; layer_norm up to its ε = 1e-5 against std ≈ 1.
        for (int i = 0; i < o1.Length; i++) Assert.True(Math.Abs(8 * o1[i] - o8[i]) <= 1e-3 * Math.Max(1, Math.Abs(o8[i])), $"{i}: {8 * o1[i]} vs {o8[i]}");
        var before = sae.Params.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
        sae.FoldActivationScale(8);
        foreach (var (n, t) in sae.Params) Assert.Equal(before[n], t.ToArray());
    }

    [Theory]
    [InlineData("constant_norm_rescale", true)]
    [InlineData("constant_norm_rescale", false)]
    [InlineData("layer_norm", true)]
    [InlineData("layer_norm", false)]
    public void StandardGradientsMatchFiniteDifferences(string mode, bool applyBDec)
    {
        var cfg = new SaeConfig { Architecture = "standard", DIn = 6, DSae = 10, ApplyBDecToInput = applyBDec, NormalizeActivations = mode };
        var sae = RandomSae(cfg, 36);
        // An offset and a scale far from 1 so both the shift and the scale matter.
        var x = RandomX(5, 6, 37);
        for (int i = 0; i < x.Length; i++) x.Span[i] = 3 * x.Span[i] + 1.5f;
        Check(sae, x, new SaeLossOptions { L1Coefficient = 0.7 }, Ref.Standard);
    }

    /// <summary>Every SAE architecture's losses with the input normalised inside the forward and the outputs de-normalised.</summary>
    [Theory]
    [InlineData("topk", "layer_norm")]
    [InlineData("batchtopk", "constant_norm_rescale")]
    [InlineData("matryoshka_batchtopk", "layer_norm")]
    [InlineData("jumprelu", "layer_norm")]
    [InlineData("gated", "constant_norm_rescale")]
    [InlineData("gated", "layer_norm")]
    public void OtherArchitecturesGradientsMatchFiniteDifferences(string arch, string mode)
    {
        var cfg = new SaeConfig
        {
            Architecture = arch, DIn = 6, DSae = 10, K = arch.Contains("topk") ? 3 : 0, NormalizeActivations = mode,
            MatryoshkaWidths = arch == "matryoshka_batchtopk" ? [4, 10] : null,
        };
        var sae = RandomSae(cfg, 38);
        var x = RandomX(5, 6, 39);
        for (int i = 0; i < x.Length; i++) x.Span[i] = 2 * x.Span[i] - 0.7f;
        var dead = new bool[10]; dead[0] = dead[3] = dead[9] = true;
        switch (arch)
        {
            case "jumprelu":
                new Rng(6).FillUniform(sae.Params["threshold"].Span, 0.05f, 0.6f);
                Check(sae, x, new SaeLossOptions { L0Coefficient = 0.3, JumpReluSparsityMode = "tanh", PreActLossCoefficient = 0.2, DeadMask = dead },
                    Ref.JumpRelu, ["threshold"]);
                break;
            case "gated":
                Check(sae, x, new SaeLossOptions { L1Coefficient = 0.4 }, Ref.Gated);
                break;
            default:
                Check(sae, x, new SaeLossOptions { AuxKCoefficient = 0.5, DeadMask = dead }, arch == "matryoshka_batchtopk" ? Ref.Matryoshka : Ref.TopK);
                break;
        }
    }
}
