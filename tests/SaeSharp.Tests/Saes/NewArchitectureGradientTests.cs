using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheckTests;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// Finite-difference checks (the <see cref="GradientCheckTests.Check"/> harness: float64 reference losses, central
/// differences) of every loss term of matryoshka_batchtopk, transcoder and skip_transcoder, and of standard with
/// the run-time activation normalisations.
/// </summary>
public class NewArchitectureGradientTests
{
    /// <summary>The batchtopk reference plus inner_mse_loss_{w}: the reconstruction from latents below each proper prefix width.</summary>
    public static Dictionary<string, double> MatryoshkaRef(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
    {
        var res = Ref.TopK(p, p0, x, c, o);
        var (xn, so, sh) = Ref.NormIn(x, c.NormalizeActivations);
        var pre = Ref.Linear(Ref.SaeIn(p, xn, c.ApplyBDecToInput), p, "W_enc", "b_enc");
        var f = Ref.TopKActs(p, pre, c);
        foreach (int w in c.MatryoshkaWidths!.SkipLast(1))
        {
            var fw = (double[,])f.Clone();
            for (int r = 0; r < fw.GetLength(0); r++) for (int j = w; j < fw.GetLength(1); j++) fw[r, j] = 0;
            res[$"inner_mse_loss_{w}"] = Ref.Mse(Ref.NormOut(Ref.Decode(fw, p, true), so, sh), x);
        }
        return res;
    }

    /// <summary>Transcoder losses against a separate target: ReLU(x·W_enc + b_enc)·W_dec + b_dec (+ x·W_skipᵀ).</summary>
    public static Dictionary<string, double> TranscoderRef(P p, double[,] x, double[,] target, SaeLossOptions o)
    {
        var pre = Ref.Linear(x, p, "W_enc", "b_enc");
        int b = pre.GetLength(0), ds = pre.GetLength(1);
        var f = new double[b, ds];
        for (int r = 0; r < b; r++) for (int j = 0; j < ds; j++) f[r, j] = Math.Max(0, pre[r, j]);
        var outp = Ref.Decode(f, p, true);
        if (p.V.ContainsKey("W_skip"))
        {
            int dOut = p.Shape["W_skip"][0], dIn = p.Shape["W_skip"][1];
            for (int r = 0; r < b; r++)
                for (int k = 0; k < dOut; k++)
                    for (int i = 0; i < dIn; i++) outp[r, k] += x[r, i] * p["W_skip", k, i];
        }
        var n = Ref.Norms(p);
        double l1 = 0;
        for (int r = 0; r < b; r++) for (int j = 0; j < ds; j++) l1 += f[r, j] * n[j];
        return new() { ["mse_loss"] = Ref.Mse(outp, target), ["l1_loss"] = o.L1Coefficient * l1 / b };
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MatryoshkaBatchTopK(bool rescale)
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
        Check(sae, RandomX(5, 6, 32), opt, MatryoshkaRef);
    }

    [Theory]
    [InlineData("transcoder", false)]
    [InlineData("skip_transcoder", false)]
    [InlineData("transcoder", true)]
    [InlineData("skip_transcoder", true)]
    public void Transcoders(string arch, bool sparsePath)
    {
        var cfg = new SaeConfig { Architecture = arch, DIn = 6, DSae = 10, DOut = 4, ApplyBDecToInput = false };
        var sae = RandomSae(cfg, 33);
        // Forcing the sparse-code path checks its d_out-wide decoder products.
        ((StandardSae)sae).SparseDensity = sparsePath ? 1 : 0;
        var x = RandomX(5, 6, 34);
        var target = RandomX(5, 4, 35);
        var ta = ToArray2(target);
        var opt = new SaeLossOptions { L1Coefficient = 0.6 };
        Check(sae, x, opt, (p, _, xa, _, o) => TranscoderRef(p, xa, ta, o), target: target);
        if (arch == "skip_transcoder")
        {
            // W_skip is trained: its gradient is not zero.
            var g = sae.Params.ZerosLike();
            sae.Backward(sae.Forward(x, target, opt), g);
            Assert.Contains(g["W_skip"].ToArray(), v => v != 0);
        }
    }

    [Theory]
    [InlineData("constant_norm_rescale", true)]
    [InlineData("constant_norm_rescale", false)]
    [InlineData("layer_norm", true)]
    [InlineData("layer_norm", false)]
    public void StandardWithActivationNormalisation(string mode, bool applyBDec)
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
    public void OtherArchitecturesWithActivationNormalisation(string arch, string mode)
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
                Check(sae, x, new SaeLossOptions { AuxKCoefficient = 0.5, DeadMask = dead }, arch == "matryoshka_batchtopk" ? MatryoshkaRef : Ref.TopK);
                break;
        }
    }
}
