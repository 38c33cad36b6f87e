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
}
