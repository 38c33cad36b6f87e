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

    /// <summary>
    /// use_matryoshka_aux_loss (SAELens 6.x): AuxK per level [w_prev, w), the level's dead latents (top k_aux of their
    /// pre-activations, no ReLU, at most that many dead) decoding without b_dec the residual x − (prefix reconstruction
    /// up to w), scaled by min(n_dead in the level / k_aux, 1); the terms add up.
    /// </summary>
    public static Dictionary<string, double> MatryoshkaLevelAuxRef(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
    {
        var res = MatryoshkaRef(p, p0, x, c, o);
        var pre = Ref.Linear(Ref.SaeIn(p, x, c.ApplyBDecToInput), p, "W_enc", "b_enc");
        // The residuals are detached: computed from the unperturbed parameters.
        var f0 = Ref.TopKActs(p0, Ref.Linear(Ref.SaeIn(p0, x, c.ApplyBDecToInput), p0, "W_enc", "b_enc"), c);
        int b = x.GetLength(0), ds = c.DSae, kAux = c.DIn / 2;
        double total = 0;
        for (int l = 0, lo = 0; l < c.MatryoshkaWidths!.Count; lo = c.MatryoshkaWidths[l++])
        {
            int w = c.MatryoshkaWidths[l];
            var dead = Enumerable.Range(lo, w - lo).Where(j => o.DeadMask![j]).ToList();
            if (dead.Count == 0) continue;
            var prefix = (double[,])f0.Clone();
            for (int r = 0; r < b; r++) for (int j = w; j < ds; j++) prefix[r, j] = 0;
            var prefixOut = Ref.Decode(prefix, p0, true); // the residual is detached
            var aux = new double[b, ds];
            int k = Math.Min(kAux, dead.Count);
            for (int r = 0; r < b; r++)
                foreach (int j in dead.OrderByDescending(j => pre[r, j]).ThenBy(j => j).Take(k)) aux[r, j] = pre[r, j];
            var resid = new double[b, c.DIn];
            for (int r = 0; r < b; r++) for (int i = 0; i < c.DIn; i++) resid[r, i] = x[r, i] - prefixOut[r, i];
            total += Math.Min((double)dead.Count / kAux, 1) * Ref.Mse(Ref.Decode(aux, p, false), resid);
        }
        res["auxiliary_reconstruction_loss"] = o.AuxKCoefficient * total;
        return res;
    }

    [Fact]
    public void MatryoshkaBatchTopKWithLevelAuxLoss()
    {
        var cfg = new SaeConfig { Architecture = "matryoshka_batchtopk", DIn = 6, DSae = 10, K = 3, MatryoshkaWidths = [2, 5, 10] };
        var sae = RandomSae(cfg, 31);
        // Dead latents in the first and last levels, none in the middle one: that level adds no term.
        var dead = new bool[10]; dead[1] = dead[6] = dead[8] = dead[9] = true;
        var opt = new SaeLossOptions { AuxKCoefficient = 0.5, DeadMask = dead, UseMatryoshkaAuxLoss = true };
        var x = RandomX(5, 6, 32);
        var global = sae.Forward(x, opt with { UseMatryoshkaAuxLoss = false }).Losses["auxiliary_reconstruction_loss"];
        var perLevel = sae.Forward(x, opt).Losses["auxiliary_reconstruction_loss"];
        Assert.NotEqual(global, perLevel, 6);
        Check(sae, x, opt, MatryoshkaLevelAuxRef);
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
