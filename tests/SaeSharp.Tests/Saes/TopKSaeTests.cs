using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// The topk and batchtopk SAEs: hand-computed cases, finite-difference gradients of every loss term (AuxK's dense
/// and sparse paths) and the agreement of AuxK's two paths.
/// </summary>
public class TopKSaeTests
{
    [Fact]
    public void HandComputedTopK()
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
    public void HandComputedBatchTopK()
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

    /// <summary>Both AuxK paths: dense over the dead latents' columns, and sparse codes (forced).</summary>
    [Theory]
    [InlineData("topk", false, false)]
    [InlineData("topk", true, false)]
    [InlineData("batchtopk", false, false)]
    [InlineData("batchtopk", true, false)]
    [InlineData("topk", false, true)]
    [InlineData("batchtopk", true, true)]
    public void GradientsMatchFiniteDifferences(string arch, bool rescale, bool sparseAux)
    {
        var sae = (TopKSae)RandomSae(Cfg(arch, k: 3, rescale: rescale), 3);
        sae.AuxSparseDensity = sparseAux ? 1 : 0;
        var dead = new bool[10]; dead[1] = dead[4] = dead[7] = dead[8] = true;
        Check(sae, RandomX(5, 6, 4), new SaeLossOptions { AuxKCoefficient = 0.5, DeadMask = dead }, Ref.TopK);
    }

    /// <summary>
    /// At an awkward size with one latent in seven dead (k_aux 9 of 43 dead per row, so the default setting takes
    /// the dense path), AuxK's dense and sparse paths give the same loss and gradients.
    /// </summary>
    [Fact]
    public void AuxKDenseAndSparsePathsAgree()
    {
        var sae = (TopKSae)RandomSae(new SaeConfig { Architecture = "topk", DIn = 19, DSae = 301, K = 5 }, 12);
        var x = RandomX(67, 19, 13);
        var dead = Enumerable.Range(0, 301).Select(j => j % 7 == 3).ToArray();
        var opt = new SaeLossOptions { AuxKCoefficient = 0.7, DeadMask = dead };
        var (fd, gd) = ForwardBackward(sae, x, opt); // the default setting
        sae.AuxSparseDensity = 1;
        var (fs, gs) = ForwardBackward(sae, x, opt);
        double ld = fd.Losses["auxiliary_reconstruction_loss"], ls = fs.Losses["auxiliary_reconstruction_loss"];
        Assert.True(Math.Abs(ld - ls) <= 1e-6 * Math.Abs(ls), $"AuxK loss: dense {ld}, sparse {ls}");
        foreach (var name in sae.Params.Names) AssertClose(gd[name].ToArray(), gs[name].ToArray(), name);
    }
}
