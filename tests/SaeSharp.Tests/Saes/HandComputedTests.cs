using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// Tiny SAEs with hand-picked weights whose codes, outputs and every loss term are worked out by hand in the
/// comments (the jumprelu one is in <see cref="JumpReluTests"/>).
/// </summary>
public class HandComputedTests
{
    private static void Set(Tensor t, params float[] v) => v.CopyTo(t.Span);

    private static void Near(double expected, double actual, double tol = 1e-6) =>
        Assert.True(Math.Abs(expected - actual) <= tol * Math.Max(1, Math.Abs(expected)), $"expected {expected}, got {actual}");

    private static void Near(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Near(expected[i], actual[i]);
    }

    // d_in = 2, d_sae = 3: W_enc columns e0, e1, e0 − e1; b_enc = [0, 0, 0.1];
    // W_dec rows [2, 0], [0, 1], [0.5, 0] (norms 2, 1, 0.5); b_dec = [0.5, 0].
    // x row 0 = [1.5, 0.25] → sae_in [1, 0.25] → pre [1, 0.25, 0.85];
    // x row 1 = [0.5, 1]    → sae_in [0, 1]    → pre [0, 1, −0.9].
    private static T Tiny<T>(SaeConfig cfg) where T : Sae
    {
        var sae = (T)SaeRegistry.Create(cfg, Compute.All);
        Set(sae.WEnc, 1, 0, 1, 0, 1, -1);
        Set(sae.Params["b_enc"], 0, 0, 0.1f);
        Set(sae.WDec, 2, 0, 0, 1, 0.5f, 0);
        Set(sae.BDec, 0.5f, 0);
        return sae;
    }

    private static Tensor TinyX() => Tensor.FromArray([1.5f, 0.25f, 0.5f, 1f], 2, 2);

    [Fact]
    public void Standard()
    {
        var sae = Tiny<StandardSae>(new SaeConfig { Architecture = "standard", DIn = 2, DSae = 3 });
        var f = sae.Forward(TinyX(), new SaeLossOptions { L1Coefficient = 2 });
        Near([1, 0.25f, 0.85f, 0, 1, 0], f.Features!.ToArray());
        // row 0: [0.5, 0] + 1·[2, 0] + 0.25·[0, 1] + 0.85·[0.5, 0] = [2.925, 0.25]; row 1: [0.5, 0] + [0, 1] = x exactly.
        Near([2.925f, 0.25f, 0.5f, 1], f.Output.ToArray());
        Near(1.425 * 1.425 / 2, f.Losses["mse_loss"]);
        // l1 = 2·mean_b Σ f_j‖W_dec[j]‖ = 2·((1·2 + 0.25·1 + 0.85·0.5) + 1·1)/2
        Near(2 * (2.675 + 1) / 2, f.Losses["l1_loss"]);
        Assert.Equal(2, f.Losses.Count);
    }

    [Fact]
    public void TopK()
    {
        var sae = Tiny<TopKSae>(new SaeConfig { Architecture = "topk", DIn = 2, DSae = 3, K = 2 });
        var dead = new bool[3]; dead[2] = true;
        var f = sae.Forward(TinyX(), new SaeLossOptions { AuxKCoefficient = 0.5, DeadMask = dead });
        // row 0 keeps latents 0 (1) and 2 (0.85); row 1 keeps latent 1 (1) and latent 0 (0, ReLU'd to 0).
        Near([1, 0, 0.85f, 0, 1, 0], f.DenseFeatures().ToArray());
        // row 0: [0.5, 0] + [2, 0] + [0.425, 0] = [2.925, 0], error [1.425, −0.25]; row 1 exact.
        Near([2.925f, 0, 0.5f, 1], f.Output.ToArray());
        Near((1.425 * 1.425 + 0.0625) / 2, f.Losses["mse_loss"]);
        // AuxK: k_aux = d_in/2 = 1, one dead latent (scale 1). Dead latent 2 pre-activations 0.85 and −0.9 decode
        // (no b_dec) [0.425, 0] and [−0.45, 0] against residuals x − x̂ = [−1.425, 0.25] and [0, 0]:
        // (1.85² + 0.25²) + 0.45², mean over rows, × 0.5.
        Near(0.5 * (1.85 * 1.85 + 0.0625 + 0.45 * 0.45) / 2, f.Losses["auxiliary_reconstruction_loss"]);
    }

    [Fact]
    public void BatchTopK()
    {
        var sae = Tiny<TopKSae>(new SaeConfig { Architecture = "batchtopk", DIn = 2, DSae = 3, K = 2, TopKThresholdLr = 0.1 });
        var f = sae.Forward(TinyX(), new SaeLossOptions());
        // k·B = 4 largest positive values of the batch: 1, 1, 0.85, 0.25: row 0 keeps three latents, row 1 one.
        Near([1, 0.25f, 0.85f, 0, 1, 0], f.DenseFeatures().ToArray());
        Near([2.925f, 0.25f, 0.5f, 1], f.Output.ToArray());
        Near(1.425 * 1.425 / 2, f.Losses["mse_loss"]);
        // threshold EMA: 0.9·0 + 0.1·(smallest kept value 0.25)
        Near(0.025, sae.TopKThreshold);
        // Inference keeps pre > threshold: with 0.5, row 0 keeps latents 0 and 2, row 1 latent 1.
        sae.TopKThreshold = 0.5;
        var inf = sae.Forward(TinyX());
        Near([1, 0, 0.85f, 0, 1, 0], inf.DenseFeatures().ToArray());
        Near((1.425 * 1.425 + 0.0625) / 2, inf.Losses["mse_loss"]);
    }

    [Fact]
    public void Gated()
    {
        var sae = new GatedSae(new SaeConfig { Architecture = "gated", DIn = 2, DSae = 2 }, Compute.All);
        Set(sae.WEnc, 1, 0, 0, 1);
        Set(sae.Params["b_gate"], 0, -0.5f);
        Set(sae.Params["r_mag"], MathF.Log(2), 0);
        Set(sae.Params["b_mag"], 0.1f, 0);
        Set(sae.WDec, 1, 0, 0, 2); // norms 1, 2
        var x = Tensor.FromArray([0.5f, 0.25f], 1, 2);
        var f = sae.Forward(x, new SaeLossOptions { L1Coefficient = 3 });
        // G = x = [0.5, 0.25]; gate π = [0.5, −0.25]; magnitude = [0.5·2 + 0.1, 0.25] = [1.1, 0.25];
        // f = [π > 0]·ReLU(mag) = [1.1, 0].
        Near([1.1f, 0], f.Features!.ToArray());
        Near([1.1f, 0], f.Output.ToArray());
        Near(0.6 * 0.6 + 0.25 * 0.25, f.Losses["mse_loss"]);
        // l1 = 3·Σ ReLU(π)·‖W_dec[j]‖ = 3·0.5·1
        Near(1.5, f.Losses["l1_loss"]);
        // aux: ReLU(π)·W_dec + b_dec = [0.5, 0] against x
        Near(0.25 * 0.25, f.Losses["auxiliary_reconstruction_loss"]);
    }

    [Fact]
    public void MatryoshkaBatchTopK()
    {
        var cfg = new SaeConfig { Architecture = "matryoshka_batchtopk", DIn = 2, DSae = 4, K = 3, MatryoshkaWidths = [1, 3, 4] };
        var sae = (MatryoshkaBatchTopKSae)SaeRegistry.Create(cfg, Compute.All);
        Set(sae.WEnc, 1, 0, 0.5f, 0.25f, 0, 1, 0, 0.25f); // columns e0, e1, e0/2, (e0 + e1)/4
        Set(sae.WDec, 1, 0, 0, 0.5f, 1, 1, 0, 1);
        Set(sae.BDec, 0, 0.5f);
        var x = Tensor.FromArray([1f, 2f], 1, 2);
        var f = sae.Forward(x, new SaeLossOptions());
        // sae_in = [1, 1.5]; pre = [1, 1.5, 0.5, 0.625]; k·B = 3 kept: latents 1, 0, 3 (latent 2 dropped).
        Near([1, 1.5f, 0, 0.625f], f.DenseFeatures().ToArray());
        // full: [0, 0.5] + [1, 0] + 1.5·[0, 0.5] + 0.625·[0, 1] = [1, 1.875]
        Near([1, 1.875f], f.Output.ToArray());
        Near(0.125 * 0.125, f.Losses["mse_loss"]);
        // width 1: [0, 0.5] + [1, 0] = [1, 0.5]; width 3: + 1.5·[0, 0.5] = [1, 1.25] (latent 2 is not active)
        Near(1.5 * 1.5, f.Losses["inner_mse_loss_1"]);
        Near(0.75 * 0.75, f.Losses["inner_mse_loss_3"]);
        Assert.Equal(["mse_loss", "inner_mse_loss_1", "inner_mse_loss_3"], f.Losses.Keys);
        Near(0.01 * 0.625, sae.TopKThreshold);
        // Without loss options (inference) only the full reconstruction is scored, as SAELens.
        Assert.Equal(["mse_loss"], sae.Forward(x).Losses.Keys);
    }

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
    public void Transcoder()
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
    public void SkipTranscoder()
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
        var sae = SaeSharp.Tests.Saes.GradientCheckTests.RandomSae(new SaeConfig { Architecture = arch, DIn = 5, DSae = 9, DOut = 3, ApplyBDecToInput = false }, 12);
        if (sae is JumpReluSae j) new Rng(2).FillUniform(j.Threshold.Span, 0.05f, 0.5f);
        var x = SaeSharp.Tests.Saes.GradientCheckTests.RandomX(7, 5, 13);
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
        var sae = GradientCheckTests.RandomSae(new SaeConfig { Architecture = "standard", DIn = 6, DSae = 10, NormalizeActivations = mode }, 51);
        var x = GradientCheckTests.RandomX(4, 6, 52);
        var cx = x.Clone();
        System.Numerics.Tensors.TensorPrimitives.Multiply(cx.Span, 8f, cx.Span);
        var o1 = sae.Forward(x).Output.ToArray(); var o8 = sae.Forward(cx).Output.ToArray();
        // constant_norm_rescale is exactly scale-free; layer_norm up to its ε = 1e-5 against std ≈ 1.
        for (int i = 0; i < o1.Length; i++) Assert.True(Math.Abs(8 * o1[i] - o8[i]) <= 1e-3 * Math.Max(1, Math.Abs(o8[i])), $"{i}: {8 * o1[i]} vs {o8[i]}");
        var before = sae.Params.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
        sae.FoldActivationScale(8);
        foreach (var (n, t) in sae.Params) Assert.Equal(before[n], t.ToArray());
    }
}
