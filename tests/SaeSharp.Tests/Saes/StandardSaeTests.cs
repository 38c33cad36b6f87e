using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// The standard SAE: a hand-computed case, finite-difference gradients of every loss term (dense and sparse-code
/// paths) and the agreement of the two paths at a trained sparsity.
/// </summary>
public class StandardSaeTests
{
    [Fact]
    public void HandComputedEncodeAndLosses()
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

    [Theory]
    [InlineData(1.0, true)]
    [InlineData(2.0, true)]
    [InlineData(1.0, false)]
    public void GradientsMatchFiniteDifferences(double lp, bool applyBDec)
    {
        var sae = RandomSae(Cfg("standard", applyBDec: applyBDec), 1);
        Check(sae, RandomX(5, 6, 2), new SaeLossOptions { L1Coefficient = 0.7, LpNorm = lp }, Ref.Standard);
    }

    /// <summary>
    /// Shapes that reach the vectorised ReLU backward (d_sae = 37: two vectors and a tail) and its row blocks
    /// (B = 260: a full block of 256 rows and a partial one), whose column sums feed b_enc and the L1 norm term.
    /// The input seed is one where no pre-activation lies within the finite-difference step of the ReLU kink
    /// (with 9,620 pre-activations some seeds put one there, and the difference quotient then sees half a kink).
    /// </summary>
    [Fact]
    public void GradientsMatchFiniteDifferencesAtAwkwardSizes()
    {
        var sae = RandomSae(new SaeConfig { Architecture = "standard", DIn = 3, DSae = 37 }, 4);
        Check(sae, RandomX(260, 3, 7), new SaeLossOptions { L1Coefficient = 0.3 }, Ref.Standard);
    }

    /// <summary>The sparse-code path (forced for every density) against the same finite differences, awkward sizes included.</summary>
    [Theory]
    [InlineData(true, 5, 6, 10)]
    [InlineData(false, 5, 6, 10)]
    [InlineData(true, 260, 3, 37)]
    public void SparsePathGradientsMatchFiniteDifferences(bool applyBDec, int rows, int dIn, int dSae)
    {
        var sae = (StandardSae)RandomSae(new SaeConfig { Architecture = "standard", DIn = dIn, DSae = dSae, ApplyBDecToInput = applyBDec }, 4);
        sae.SparseDensity = 1;
        var x = RandomX(rows, dIn, 7);
        Assert.NotNull(sae.Forward(x, new SaeLossOptions()).Codes);
        Check(sae, x, new SaeLossOptions { L1Coefficient = 0.3 }, Ref.Standard);
    }

    /// <summary>
    /// At a trained SAE's sparsity (negative encoder biases, about 2% of latents firing) the sparse path gives the
    /// dense path's losses, outputs and every gradient, and the default setting picks it on its own.
    /// </summary>
    [Fact]
    public void SparseAndDensePathsAgree()
    {
        var sae = (StandardSae)RandomSae(new SaeConfig { Architecture = "standard", DIn = 19, DSae = 301 }, 9);
        var x = RandomX(67, 19, 10);
        // Each latent's bias at minus its 98th-percentile pre-activation over the batch: about 2% fire.
        var bEnc = sae.Params["b_enc"];
        Ops.Clear(bEnc, compute: Compute.All);
        var pre = sae.Forward(x).PreActs;
        for (int j = 0; j < bEnc.Length; j++)
            bEnc.Span[j] = -SecondLargestInColumn(pre, j);
        var opt = new SaeLossOptions { L1Coefficient = 0.4 };
        var auto = sae.Forward(x, opt);
        Assert.NotNull(auto.Codes);
        int firing = auto.Codes!.Count;
        Assert.InRange(firing, 1, 0.03 * 67 * 301);

        var (fd, fs) = DenseAndSparseAgree(sae, d => sae.SparseDensity = d, x, opt);
        foreach (var (name, v) in fd.Losses) Assert.Equal(v, fs.Losses[name], 5);
        AssertClose(fd.DenseFeatures().ToArray(), fs.DenseFeatures().ToArray(), "features");
    }
}
