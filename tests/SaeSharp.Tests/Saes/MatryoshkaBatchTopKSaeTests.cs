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

    /// <summary>
    /// use_matryoshka_aux_loss (SAELens 6.x): AuxK per level [w_prev, w), the level's dead latents (top k_aux of their
    /// pre-activations, no ReLU, at most that many dead) decoding without b_dec the residual x − (prefix reconstruction
    /// up to w), scaled by min(n_dead in the level / k_aux, 1); the terms add up.
    /// </summary>
    public static Dictionary<string, double> MatryoshkaLevelAuxRef(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
    {
        var res = Ref.Matryoshka(p, p0, x, c, o);
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
}
