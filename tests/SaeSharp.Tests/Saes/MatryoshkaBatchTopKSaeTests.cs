using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// The matryoshka_batchtopk SAE: a hand-computed case (inner prefix losses, threshold, inference) and
/// finite-difference gradients of every loss term.
/// </summary>
public class MatryoshkaBatchTopKSaeTests
{
    [Fact]
    public void HandComputedEncodeAndLosses()
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

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GradientsMatchFiniteDifferences(bool rescale)
    {
        var cfg = new SaeConfig
        {
            Architecture = "matryoshka_batchtopk", DIn = 6, DSae = 10, K = 3, RescaleActsByDecoderNorm = rescale,
            MatryoshkaWidths = [2, 5, 10],
        };
        var sae = RandomSae(cfg, 31);
        var dead = new bool[10]; dead[1] = dead[6] = dead[8] = true;
        var opt = new SaeLossOptions { AuxKCoefficient = 0.5, DeadMask = dead };
        var f = sae.Forward(RandomX(5, 6, 32), opt);
        Assert.Equal(["mse_loss", "auxiliary_reconstruction_loss", "inner_mse_loss_2", "inner_mse_loss_5"], f.Losses.Keys);
        Check(sae, RandomX(5, 6, 32), opt, Ref.Matryoshka);
    }
}
