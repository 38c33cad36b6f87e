using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// The jumprelu SAE: a hand-computed case, finite-difference gradients of every loss term (dense and sparse-code
/// paths), the threshold's rectangle-kernel pseudo-gradients and true pre-act gradient, and the agreement of the
/// two paths at a trained sparsity.
/// </summary>
public class JumpReluSaeTests
{
    [Theory]
    [MemberData(nameof(SaeSharp.Tests.Tensors.SimdPaths.Widths), MemberType = typeof(SaeSharp.Tests.Tensors.SimdPaths))]
    public void StepModeEntriesMatchTheScalarRuleAtEveryWidth(string width)
    {
        var w = SaeSharp.Tests.Tensors.SimdPaths.Parse(width);
        var rng = new Rng(61);
        const double Eps = 0.05, L0PerRow = 0.3;
        foreach (int n in SaeSharp.Tests.Tensors.SimdPaths.AwkwardLengths)
        {
            // Pre-activations near the thresholds (inside and outside the kernel window), inactive and active latents, zero gradients.
            var th = Enumerable.Range(0, n).Select(_ => (float)(0.2 + 0.5 * rng.NextDouble())).ToArray();
            var pre = th.Select(t => t + (float)((rng.NextDouble() - 0.5) * 0.2)).ToArray();
            var f = pre.Select((p, j) => p > th[j] && rng.Bernoulli(0.9) ? p : 0f).ToArray();
            var dF = Enumerable.Range(0, n).Select(_ => rng.Bernoulli(0.2) ? 0f : (float)(rng.NextDouble() - 0.5)).ToArray();
            var dPre = new float[n]; var dTh = new double[n]; var dSum = new double[n];
            JumpReluSae.StepModeEntries(pre, f, dF, th, dPre, dTh, dSum, Eps, L0PerRow, w);
            for (int j = 0; j < n; j++)
            {
                double u = (pre[j] - (double)th[j]) / Eps;
                double kern = u > -0.5 && u < 0.5 ? 1 : 0;
                double expectedTh = -L0PerRow * kern / Eps + (dF[j] != 0 ? -(th[j] / Eps) * kern * dF[j] : 0);
                float expectedPre = f[j] != 0 ? dF[j] : 0;
                Assert.Equal(expectedPre, dPre[j]);
                Assert.Equal(expectedPre, dSum[j], 6);
                Assert.True(Math.Abs(expectedTh - dTh[j]) <= 1e-5 * (1 + Math.Abs(expectedTh)), $"{width} n={n} j={j}: dθ {dTh[j]}, expected {expectedTh}");
            }
        }
    }

    [Fact]
    public void HandComputedEncodeAndLosses()
    {
        // d_in = 2, d_sae = 3, identity-like weights: pre = x − b_dec (+ b_enc).
        var cfg = new SaeConfig { Architecture = "jumprelu", DIn = 2, DSae = 3 };
        var sae = new JumpReluSae(cfg, Compute.All);
        float[] wEnc = [1, 0, 1, 0, 1, -1]; // columns: e0, e1, e0 − e1
        wEnc.CopyTo(sae.WEnc.Span);
        float[] wDec = [1, 0, 0, 1, 0.5f, 0];
        wDec.CopyTo(sae.WDec.Span);
        sae.Params["b_enc"].Span[2] = 0.1f;
        float[] th = [0.5f, 0.5f, 0.2f];
        th.CopyTo(sae.Threshold.Span);
        var x = Tensor.FromArray([1.0f, 0.25f], 1, 2);
        var f = sae.Forward(x, new SaeLossOptions { L0Coefficient = 2, DeadMask = new bool[3] });
        // pre = [1, 0.25, 0.85]; active: 1 > 0.5 yes, 0.25 > 0.5 no, 0.85 > 0.2 yes
        Assert.Equal([1f, 0f, 0.85f], f.Features!.ToArray());
        // out = 1·[1,0] + 0.85·[0.5,0] = [1.425, 0]; mse = 0.425² + 0.25²
        Assert.Equal(1.425f, f.Output[0, 0], 6);
        Assert.Equal(0.425 * 0.425 + 0.25 * 0.25, f.Losses["mse_loss"], 6);
        Assert.Equal(2 * 2.0, f.Losses["l0_loss"], 12);
    }

    [Theory]
    [InlineData("step")]
    [InlineData("tanh")]
    public void GradientsMatchFiniteDifferences(string mode)
    {
        var sae = RandomSae(Cfg("jumprelu"), 5);
        JumpReluChecks(sae, mode);
        // The same checks on the sparse-code path, forced.
        ((JumpReluSae)sae).SparseDensity = 1;
        JumpReluChecks(sae, mode);
    }

    private static void JumpReluChecks(Sae sae, string mode)
    {
        new Rng(6).FillUniform(sae.Params["threshold"].Span, 0.05f, 0.6f);
        var dead = new bool[10]; dead[0] = dead[3] = dead[9] = true;
        var opt = new SaeLossOptions { L0Coefficient = 0.3, JumpReluSparsityMode = mode, PreActLossCoefficient = 0.2, DeadMask = dead };
        // Threshold gradients of mse/l0 are pseudo-gradients (checked in ThresholdPseudoGradientsFollowTheRectangleKernel);
        // the only true threshold gradient, pre_act_loss's, is checked in PreActLossThresholdGradientIsTrueGradient.
        // With mode step, l0_loss is flat in every parameter but the threshold (its gradient is all pseudo).
        Check(sae, RandomX(5, 6, 7), opt, Ref.JumpRelu, ["threshold"], mode == "step" ? ["l0_loss"] : null);
    }

    private static (JumpReluSae Sae, Tensor X, SaeLossOptions Opt) Setup(string mode, bool sparse = false)
    {
        // A wide bandwidth puts many pre-activations inside the rectangle window, so the check is not vacuous.
        var cfg = new SaeConfig { Architecture = "jumprelu", DIn = 6, DSae = 10, JumpReluBandwidth = 0.8 };
        var sae = (JumpReluSae)RandomSae(cfg, 11);
        sae.SparseDensity = sparse ? 1 : 0;
        new Rng(12).FillUniform(sae.Threshold.Span, 0.1f, 0.5f);
        var dead = new bool[10]; dead[2] = dead[5] = true;
        var opt = new SaeLossOptions { L0Coefficient = 0.3, JumpReluSparsityMode = mode, JumpReluTanhScale = 2, PreActLossCoefficient = 0.25, DeadMask = dead };
        return (sae, RandomX(7, 6, 13), opt);
    }

    [Theory]
    [InlineData("step", false)]
    [InlineData("tanh", false)]
    [InlineData("step", true)]
    [InlineData("tanh", true)]
    public void ThresholdPseudoGradientsFollowTheRectangleKernel(string mode, bool sparse)
    {
        var (sae, x, opt) = Setup(mode, sparse);
        var f = sae.Forward(x, opt);
        int b = x.Rows, ds = 10, d = 6;
        double eps = sae.Config.JumpReluBandwidth;
        var th = sae.Threshold.ToArray();
        var norms = Ops.RowNorms(sae.WDec);
        int inWindow = 0;
        foreach (var term in new[] { "mse_loss", "l0_loss" })
        {
            var g = sae.Params.ZerosLike();
            sae.Backward(f, g, t => t == term);
            for (int j = 0; j < ds; j++)
            {
                double expected = 0;
                for (int r = 0; r < b; r++)
                {
                    double pre = f.PreActs[r, j], kern = Math.Abs((pre - th[j]) / eps) < 0.5 ? 1 : 0;
                    inWindow += (int)kern;
                    double dF;
                    if (term == "mse_loss")
                    {
                        dF = 0;
                        for (int i = 0; i < d; i++) dF += 2.0 * (f.Output[r, i] - x[r, i]) * sae.WDec[j, i] / b;
                    }
                    else if (mode == "tanh")
                    {
                        double t = Math.Tanh(2 * f.Features![r, j] * norms[j]);
                        dF = 0.3 / b * 2 * norms[j] * (1 - t * t);
                    }
                    else
                    {
                        // step: ∂H(pre − θ)/∂θ := −(1/ε)K, no θ factor
                        expected += -0.3 / b * kern / eps;
                        continue;
                    }
                    expected += -(th[j] / eps) * kern * dF;
                }
                Assert.True(Math.Abs(g["threshold"][j] - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)),
                    $"{term} dθ[{j}]: {g["threshold"][j]} vs rectangle formula {expected}");
            }
        }
        Assert.True(inWindow > 10, "too few pre-activations inside the kernel window");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PreActLossThresholdGradientIsTrueGradient(bool sparse)
    {
        var (sae, x, opt) = Setup("step", sparse);
        var f = sae.Forward(x, opt);
        var g = sae.Params.ZerosLike();
        sae.Backward(f, g, t => t == "pre_act_loss");
        var p0 = P.Of(sae);
        var xa = new double[x.Rows, x.Cols];
        for (int r = 0; r < x.Rows; r++) for (int i = 0; i < x.Cols; i++) xa[r, i] = x[r, i];
        bool any = false;
        for (int j = 0; j < 10; j++)
        {
            const double h = 1e-6;
            var pp = p0.Copy(); pp.V["threshold"][j] += h;
            var pm = p0.Copy(); pm.V["threshold"][j] -= h;
            double fd = (Ref.JumpRelu(pp, p0, xa, sae.Config, opt)["pre_act_loss"] - Ref.JumpRelu(pm, p0, xa, sae.Config, opt)["pre_act_loss"]) / (2 * h);
            any |= fd != 0;
            Assert.True(Math.Abs(g["threshold"][j] - fd) <= 1e-5 * Math.Max(1, Math.Abs(fd)), $"dθ[{j}] {g["threshold"][j]} vs FD {fd}");
        }
        Assert.True(any);
    }

    /// <summary>
    /// A jumprelu SAE at a trained sparsity (about 2% firing, thresholds near the pre-activations so the kernel window
    /// holds entries that do not fire, dead latents under the pre-act loss): the sparse-code path gives the dense
    /// path's losses, outputs and every gradient, in both sparsity-loss modes, and the default setting takes it.
    /// </summary>
    [Theory]
    [InlineData("step")]
    [InlineData("tanh")]
    public void SparseAndDensePathsAgree(string mode)
    {
        var sae = (JumpReluSae)RandomSae(new SaeConfig { Architecture = "jumprelu", DIn = 19, DSae = 301, JumpReluBandwidth = 0.05 }, 14);
        var x = RandomX(67, 19, 15);
        var pre = sae.Forward(x).PreActs;
        // Each latent's threshold at its 98th-percentile pre-activation over the batch (b_enc 0 → pre = sae_in·W_enc).
        for (int j = 0; j < 301; j++)
            sae.Threshold.Span[j] = Math.Max(0.01f, SecondLargestInColumn(pre, j));
        var dead = Enumerable.Range(0, 301).Select(j => j % 50 == 7).ToArray();
        var opt = new SaeLossOptions { L0Coefficient = 0.3, JumpReluSparsityMode = mode, PreActLossCoefficient = 0.2, DeadMask = dead };
        Assert.NotNull(sae.Forward(x, opt).Codes);
        var (fd, fs) = DenseAndSparseAgree(sae, d => sae.SparseDensity = d, x, opt);
        // The penalties sum the same terms in the same order; the reconstruction differs by float rounding only.
        foreach (var (name, v) in fd.Losses)
            Assert.True(Math.Abs(v - fs.Losses[name]) <= (name == "mse_loss" ? 1e-6 * Math.Abs(v) : 0), $"{name}: dense {v}, sparse {fs.Losses[name]}");
    }
}
