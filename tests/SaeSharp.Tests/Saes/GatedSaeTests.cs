using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// The gated SAE: a hand-computed case, finite-difference gradients of every loss term (dense and sparse-code
/// paths) and the agreement of the two paths at a trained sparsity.
/// </summary>
public class GatedSaeTests
{
    [Theory]
    [MemberData(nameof(SaeSharp.Tests.Tensors.SimdPaths.Widths), MemberType = typeof(SaeSharp.Tests.Tensors.SimdPaths))]
    public void GateEntriesMatchTheScalarRuleAtEveryWidth(string width)
    {
        var w = SaeSharp.Tests.Tensors.SimdPaths.Parse(width);
        var rng = new Rng(71);
        foreach (int n in SaeSharp.Tests.Tensors.SimdPaths.AwkwardLengths)
        {
            var g = SaeSharp.Tests.Tensors.SimdPaths.Values(n, rng, 0.1);
            var bGate = SaeSharp.Tests.Tensors.SimdPaths.Values(n, rng, 0);
            var scale = Enumerable.Range(0, n).Select(_ => (float)Math.Exp(rng.NextDouble() - 0.5)).ToArray();
            var bMag = SaeSharp.Tests.Tensors.SimdPaths.Values(n, rng, 0);
            var gate = new float[n]; var mag = new float[n]; var f = new float[n];
            int open = GatedSae.GateEntries(g, bGate, scale, bMag, gate, mag, f, w);
            int expectedOpen = 0;
            for (int j = 0; j < n; j++)
            {
                float p = g[j] + bGate[j], m = g[j] * scale[j] + bMag[j];
                Assert.Equal(p, gate[j]);
                Assert.Equal(m, mag[j]);
                Assert.Equal(p > 0 && m > 0 ? m : 0f, f[j]);
                if (p > 0) expectedOpen++;
            }
            Assert.Equal(expectedOpen, open);
        }
    }

    [Fact]
    public void HandComputedEncodeAndLosses()
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
    public void GradientsMatchFiniteDifferences()
    {
        var sae = RandomSae(Cfg("gated"), 8);
        Check(sae, RandomX(5, 6, 9), new SaeLossOptions { L1Coefficient = 0.4 }, Ref.Gated);
        // The same check on the sparse-code path, forced.
        ((GatedSae)sae).SparseDensity = 1;
        Check(sae, RandomX(5, 6, 9), new SaeLossOptions { L1Coefficient = 0.4 }, Ref.Gated);
    }

    /// <summary>
    /// A gated SAE with about 2% of its gates open (b_gate at minus each latent's 98th-percentile gate pre-activation):
    /// the sparse-code path gives the dense path's losses, outputs and every gradient, and the default setting takes it.
    /// </summary>
    [Fact]
    public void SparseAndDensePathsAgree()
    {
        var sae = (GatedSae)RandomSae(new SaeConfig { Architecture = "gated", DIn = 19, DSae = 301 }, 16);
        var x = RandomX(67, 19, 17);
        var bGate = sae.Params["b_gate"];
        Ops.Clear(bGate, compute: Compute.All);
        var saeIn = x.Clone(); // x − b_dec
        for (int r = 0; r < x.Rows; r++) System.Numerics.Tensors.TensorPrimitives.Subtract(saeIn.Row(r), sae.BDec.Span, saeIn.Row(r));
        var g = Gemm.MatMul(saeIn, sae.WEnc, Compute.All);
        for (int j = 0; j < 301; j++) bGate.Span[j] = -SecondLargestInColumn(g, j);
        var opt = new SaeLossOptions { L1Coefficient = 0.4 };
        Assert.NotNull(sae.Forward(x, opt).Codes);
        var (fd, fs) = DenseAndSparseAgree(sae, d => sae.SparseDensity = d, x, opt);
        foreach (var (name, v) in fd.Losses)
            Assert.True(Math.Abs(v - fs.Losses[name]) <= 1e-6 * Math.Abs(v), $"{name}: dense {v}, sparse {fs.Losses[name]}");
    }
}
