using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// The transcoder and skip_transcoder (StandardSae with a separate target): hand-computed cases and
/// finite-difference gradients of every loss term on the dense and sparse-code paths.
/// </summary>
public class TranscoderTests
{
    // d_in = 2, d_sae = 2, d_out = 3: pre0 = x0 + x1, pre1 = x1 − x0 + 0.5; W_dec rows [1, 0, 2], [0, 1, 0]
    // (norms √5, 1); b_dec = [0, 0, 1]. x = [1, 0.5] → pre = [1.5, 0] → f = [1.5, 0] → decoded [1.5, 0, 4].
    private static StandardSae TinyTranscoder(string arch)
    {
        var sae = (StandardSae)SaeRegistry.Create(new SaeConfig { Architecture = arch, DIn = 2, DSae = 2, DOut = 3, ApplyBDecToInput = false }, Compute.All);
        Set(sae.WEnc, 1, -1, 1, 1);
        Set(sae.Params["b_enc"], 0, 0.5f);
        Set(sae.WDec, 1, 0, 2, 0, 1, 0);
        Set(sae.BDec, 0, 0, 1);
        return sae;
    }

    [Fact]
    public void HandComputedTranscoder()
    {
        var sae = TinyTranscoder("transcoder");
        var x = Tensor.FromArray([1f, 0.5f], 1, 2);
        var target = Tensor.FromArray([1f, 0f, 4f], 1, 3);
        var f = sae.Forward(x, target, new SaeLossOptions { L1Coefficient = 1 });
        Near([1.5f, 0], f.Features!.ToArray());
        Near([1.5f, 0, 4], f.Output.ToArray());
        Near(0.25, f.Losses["mse_loss"]);
        Near(1.5 * Math.Sqrt(5), f.Losses["l1_loss"]);
        // Without a target: codes and output only.
        var inf = sae.Forward(x);
        Near([1.5f, 0, 4], inf.Output.ToArray());
        Assert.Empty(inf.Losses);
        Assert.Throws<ArgumentException>(() => sae.Forward(x, new SaeLossOptions()));
        Assert.Throws<InvalidOperationException>(() => sae.ForwardWithError(x));
        Assert.Throws<InvalidOperationException>(() => sae.FoldActivationScale(2));
    }

    [Fact]
    public void HandComputedSkipTranscoder()
    {
        var sae = TinyTranscoder("skip_transcoder");
        Set(sae.WSkip!, 0, 0, 1, 0, 0, -2); // x·W_skipᵀ = [0, x0, −2·x1] = [0, 1, −1]
        var x = Tensor.FromArray([1f, 0.5f], 1, 2);
        var target = Tensor.FromArray([1f, 0f, 4f], 1, 3);
        var f = sae.Forward(x, target, new SaeLossOptions { L1Coefficient = 1 });
        Near([1.5f, 0], f.Features!.ToArray());
        Near([1.5f, 1, 3], f.Output.ToArray());
        Near(0.25 + 1 + 1, f.Losses["mse_loss"]);
        Near(1.5 * Math.Sqrt(5), f.Losses["l1_loss"]);
    }

    [Theory]
    [InlineData("transcoder", false)]
    [InlineData("skip_transcoder", false)]
    [InlineData("transcoder", true)]
    [InlineData("skip_transcoder", true)]
    public void GradientsMatchFiniteDifferences(string arch, bool sparsePath)
    {
        var cfg = new SaeConfig { Architecture = arch, DIn = 6, DSae = 10, DOut = 4, ApplyBDecToInput = false };
        var sae = RandomSae(cfg, 33);
        // Forcing the sparse-code path checks its d_out-wide decoder products.
        ((StandardSae)sae).SparseDensity = sparsePath ? 1 : 0;
        var x = RandomX(5, 6, 34);
        var target = RandomX(5, 4, 35);
        var ta = ToArray2(target);
        var opt = new SaeLossOptions { L1Coefficient = 0.6 };
        Check(sae, x, opt, (p, _, xa, _, o) => Ref.Transcoder(p, xa, ta, o), target: target);
        if (arch == "skip_transcoder")
        {
            // W_skip is trained: its gradient is not zero.
            var g = sae.Params.ZerosLike();
            sae.Backward(sae.Forward(x, target, opt), g);
            Assert.Contains(g["W_skip"].ToArray(), v => v != 0);
        }
    }

    [Fact]
    public void JumpReluSkipTranscoder()
    {
        // The tiny transcoder's weights with thresholds 1 and 0.1: pre = [1.5, 0] → f = [1.5, 0] (pre1 = 0 is not above 0.1).
        var sae = (JumpReluSae)SaeRegistry.Create(new SaeConfig { Architecture = "jumprelu_skip_transcoder", DIn = 2, DSae = 2, DOut = 3, ApplyBDecToInput = false }, Compute.All);
        Set(sae.WEnc, 1, -1, 1, 1);
        Set(sae.Params["b_enc"], 0, 0.5f);
        Set(sae.WDec, 1, 0, 2, 0, 1, 0);
        Set(sae.BDec, 0, 0, 1);
        Set(sae.Threshold, 1, 0.1f);
        Set(sae.WSkip!, 0, 0, 1, 0, 0, -2);
        var x = Tensor.FromArray([1f, 0.5f], 1, 2);
        var f = sae.Forward(x, Tensor.FromArray([1f, 0f, 4f], 1, 3), new SaeLossOptions { L0Coefficient = 1 });
        Near([1.5f, 0], f.DenseFeatures().ToArray());
        Near([1.5f, 1, 3], f.Output.ToArray());
        Near(0.25 + 1 + 1, f.Losses["mse_loss"]);
        Near(1, f.Losses["l0_loss"]); // one latent above its threshold
        // A threshold of 1.6 closes the first latent too: only the skip and b_dec remain.
        Set(sae.Threshold, 1.6f, 0.1f);
        Near([0, 1, 0], sae.Forward(x).Output.ToArray());
    }

    /// <summary>
    /// A transcoder trained on s_in·x against s_out·y takes raw x and predicts raw y once the scales are folded in:
    /// W_enc·s_in, W_dec/s_out, b_dec/s_out, W_skip·s_in/s_out.
    /// </summary>
    [Theory]
    [InlineData("skip_transcoder")]
    [InlineData("jumprelu_skip_transcoder")]
    public void FoldingATranscodersTwoScalesKeepsItsPredictions(string arch)
    {
        var sae = RandomSae(new SaeConfig { Architecture = arch, DIn = 5, DSae = 9, DOut = 3, ApplyBDecToInput = false }, 12);
        if (sae is JumpReluSae j) new Rng(2).FillUniform(j.Threshold.Span, 0.05f, 0.5f);
        var x = RandomX(7, 5, 13);
        const float sIn = 2.5f, sOut = 0.4f;
        var scaledX = x.Clone();
        System.Numerics.Tensors.TensorPrimitives.Multiply(scaledX.Span, sIn, scaledX.Span);
        var trained = sae.Forward(scaledX).Output.ToArray(); // in the target's training scale
        sae.FoldActivationScales(sIn, sOut);
        var raw = sae.Forward(x).Output.ToArray();
        for (int i = 0; i < raw.Length; i++) Assert.True(Math.Abs(raw[i] * sOut - trained[i]) <= 1e-5 * Math.Max(1, Math.Abs(trained[i])), $"{i}: {raw[i] * sOut} vs {trained[i]}");
        Assert.Throws<InvalidOperationException>(() => sae.FoldActivationScale(2));
        var plain = SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = 5, DSae = 9 }, Compute.All);
        Assert.Throws<ArgumentException>(() => plain.FoldActivationScales(2, 3));
    }


    /// <summary>jumprelu_transcoder losses: the jumprelu encoder on x (no b_dec subtraction) decoding d_out outputs (+ x·W_skipᵀ) against a separate target.</summary>
    public static Dictionary<string, double> JumpReluTranscoderRef(P p, double[,] x, double[,] target, SaeConfig c, SaeLossOptions o)
    {
        var res = Ref.JumpRelu(p, p, x, c, o);
        var pre = Ref.Linear(x, p, "W_enc", "b_enc");
        int b = pre.GetLength(0), ds = pre.GetLength(1);
        var f = new double[b, ds];
        for (int r = 0; r < b; r++)
            for (int j = 0; j < ds; j++) f[r, j] = pre[r, j] > p["threshold", j] && pre[r, j] > 0 ? pre[r, j] : 0;
        var outp = Ref.Decode(f, p, true);
        if (p.V.ContainsKey("W_skip"))
            for (int r = 0; r < b; r++)
                for (int k = 0; k < c.DOut; k++)
                    for (int i = 0; i < c.DIn; i++) outp[r, k] += x[r, i] * p["W_skip", k, i];
        res["mse_loss"] = Ref.Mse(outp, target);
        return res;
    }

    [Theory]
    [InlineData("jumprelu_transcoder", false)]
    [InlineData("jumprelu_skip_transcoder", false)]
    [InlineData("jumprelu_skip_transcoder", true)]
    public void JumpReluTranscoders(string arch, bool sparsePath)
    {
        var cfg = new SaeConfig { Architecture = arch, DIn = 6, DSae = 10, DOut = 4, ApplyBDecToInput = false };
        var sae = (JumpReluSae)RandomSae(cfg, 41);
        sae.SparseDensity = sparsePath ? 1 : 0;
        new Rng(6).FillUniform(sae.Threshold.Span, 0.05f, 0.6f);
        var x = RandomX(5, 6, 42);
        var target = RandomX(5, 4, 43);
        var ta = ToArray2(target);
        var dead = new bool[10]; dead[0] = dead[3] = dead[9] = true;
        var opt = new SaeLossOptions { L0Coefficient = 0.3, JumpReluSparsityMode = "tanh", PreActLossCoefficient = 0.2, DeadMask = dead };
        Assert.Equal([10, 4], sae.WDec.Shape.ToArray());
        Assert.Equal(arch == "jumprelu_skip_transcoder", sae.WSkip is not null);
        // The threshold's mse and l0 gradients are straight-through pseudo-gradients, checked with the jumprelu SAE.
        Check(sae, x, opt, (p, _, xa, c, o) => JumpReluTranscoderRef(p, xa, ta, c, o), ["threshold"], target: target);
        // Inference without a target: outputs only.
        var inf = sae.Forward(x);
        Assert.Empty(inf.Losses);
        Assert.Equal([5, 4], inf.Output.Shape.ToArray());
    }
}
