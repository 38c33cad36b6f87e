using SaeSharp.Evals;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Evals;

/// <summary>Sparsity, density and weight statistics per latent, on latents and weights chosen by hand.</summary>
public class FeatureStatsTests
{
    private static void Near(double expected, double actual, double tol = 1e-6) =>
        Assert.True(Math.Abs(expected - actual) <= tol, $"expected {expected}, got {actual}");

    // Two sequences of two positions, d_sae 3. Rows: s0p0 [1, 0, 0], s0p1 [2, 0, 0.5], s1p0 [0, 0, 3], s1p1 excluded.
    private static readonly Tensor Latents = Tensor.FromArray([1f, 0, 0, 2, 0, 0.5f, 0, 0, 3, 9, 9, 9], 4, 3);
    private static readonly bool[] Keep = [true, true, true, false];

    private static void CheckHandValues(FeatureStats s)
    {
        Assert.Equal(3, s.Count);
        Near((1 + 2 + 1) / 3.0, s.L0);                       // firing latents per kept position
        Near((1 + 2.5 + 3) / 3.0, s.L1);
        Assert.Equal([2 / 3f, 0, 2 / 3f], s.FeatureDensity());
        // latent 0 fires twice in sequence 0 only; latent 2 once in each sequence; latent 1 never (0/0).
        var cah = s.ConsistentActivationHeuristic();
        Assert.Equal(2f, cah[0]);
        Assert.True(float.IsNaN(cah[1]));
        Assert.Equal(1f, cah[2]);
    }

    [Fact]
    public void DenseLatents() 
    {
        var s = new FeatureStats(3);
        s.Add(Latents, Keep, seqLen: 2);
        CheckHandValues(s);
    }

    [Fact]
    public void SparseCodesGiveTheSameAsDense()
    {
        var s = new FeatureStats(3);
        s.Add(SparseCodes.FromDense(Latents, Compute.Single), Keep, seqLen: 2);
        CheckHandValues(s);
    }

    [Fact]
    public void ZeroCodeEntriesDoNotFire()
    {
        // Top-k keeps entries its ReLU set to zero: they are code entries, not firings.
        var codes = SparseCodes.FromRowCounts(3, [2]);
        codes.Index[0] = 0; codes.Value[0] = 1.5f;
        codes.Index[1] = 2; codes.Value[1] = 0;
        var s = new FeatureStats(3);
        s.Add(codes, [true], seqLen: 1);
        Near(1, s.L0);
        Assert.Equal([1f, 0, 0], s.FeatureDensity());
        Assert.Throws<ArgumentException>(() => s.Add(Latents, Keep, seqLen: 3));
    }

    // d_in 2, d_sae 3: encoder columns [3, 4], [1, 0], [0, 0]; decoder rows [6, 8], [0, 1], [1, 1].
    private static Sae Weights(string architecture = "standard")
    {
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = architecture, DIn = 2, DSae = 3, K = architecture == "topk" ? 1 : 0 }, Compute.All);
        Tensor.FromArray([3f, 1, 0, 4, 0, 0], 2, 3).Span.CopyTo(sae.WEnc.Span);
        Tensor.FromArray([6f, 8, 0, 1, 1, 1], 3, 2).Span.CopyTo(sae.WDec.Span);
        return sae;
    }

    [Fact]
    public void WeightStatisticsByLatent()
    {
        var sae = Weights();
        Tensor.FromArray([0.1f, 0.2f, 0.3f], 3).Span.CopyTo(sae.Params["b_enc"].Span);
        Assert.Equal([5f, 1, 0], FeatureWeights.EncoderNorms(sae));
        Assert.Equal([0.1f, 0.2f, 0.3f], FeatureWeights.EncoderBias(sae));
        var cos = WeightStatistics.EncoderDecoderCosines(sae)!;
        Near(1, cos[0]);                                      // [3, 4] ∥ [6, 8]
        Near(0, cos[1]);                                      // [1, 0] ⊥ [0, 1]
        Assert.Equal(0f, cos[2]);                             // a zero vector
        // Encoder: cos([3,4],[1,0]) = 0.6 is each one's best; the zero column scores 0 against everything.
        var enc = FeatureWeights.MaxEncoderCosine(sae, Compute.Single);
        Near(0.6, enc[0]); Near(0.6, enc[1]); Near(0, enc[2]);
        // Decoder: cos([6,8],[1,1]) = 14/(10√2), cos([0,1],[1,1]) = 1/√2, cos([6,8],[0,1]) = 0.8.
        var dec = FeatureWeights.MaxDecoderCosine(sae, Compute.All);
        Near(Math.Max(0.8, 14 / (10 * Math.Sqrt(2))), dec[0]);
        Near(0.8, dec[1]);
        Near(14 / (10 * Math.Sqrt(2)), dec[2]);
    }

    [Fact]
    public void MaxCosineOverManyBlocksMatchesPairwise()
    {
        var rng = new Rng(3);
        var v = new Tensor(300, 5); // more rows than one Gram block
        rng.FillNormal(v.Span);
        var max = FeatureWeights.MaxCosineToOthers(v, Compute.All);
        foreach (int i in new[] { 0, 255, 256, 299 })
        {
            double best = double.NegativeInfinity;
            for (int j = 0; j < v.Rows; j++) if (j != i) best = Math.Max(best, System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(v.Row(i), v.Row(j)));
            Near(best, max[i], 1e-5);
        }
        Assert.Equal(float.NegativeInfinity, FeatureWeights.MaxCosineToOthers(new Tensor(1, 3), Compute.Single)[0]);
    }

    [Fact]
    public void GatedBiasIsBMagAndTranscodersHaveNoEncoderDecoderCosine()
    {
        var gated = SaeRegistry.Create(new SaeConfig { Architecture = "gated", DIn = 2, DSae = 3 }, Compute.All);
        gated.Params["b_mag"][1] = 4;
        Assert.Equal([0f, 4, 0], FeatureWeights.EncoderBias(gated));
        var tc = SaeRegistry.Create(new SaeConfig { Architecture = "transcoder", DIn = 2, DSae = 3, DOut = 5, ApplyBDecToInput = false }, Compute.All);
        Assert.Null(WeightStatistics.EncoderDecoderCosines(tc));
    }

    [Fact]
    public void MiscMetricsOfSaeBenchCore()
    {
        // densities 0, 0.005, 0.05, 0.5: three alive; two above 1% holding 0.55 of 0.555; one above 10% (0.5/0.555).
        var m = FeatureSummary.Misc([0, 0.005f, 0.05f, 0.5f], [0.5f, 0.7f, 0.9f, 0.1f], null);
        Near(0.75, m["frac_alive"]);
        Near(0.5, m["freq_over_1_percent"]);
        Near(0.25, m["freq_over_10_percent"]);
        Near(0.55 / 0.555, m["normalized_freq_over_1_percent"]);
        Near(0.5 / 0.555, m["normalized_freq_over_10_percent"]);
        Near(0.55, m["average_max_encoder_cosine_sim"]);
        Assert.False(m.ContainsKey("average_max_decoder_cosine_sim"));
    }
}
