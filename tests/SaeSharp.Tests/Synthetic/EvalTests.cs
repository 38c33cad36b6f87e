using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class EvalTests
{
    private static FeatureDictionary Dict(int n = 24, int h = 16, ulong seed = 1) => FeatureDictionary.CreateRandom(n, h, new Rng(seed), compute: Compute.All);

    [Fact]
    public void MccIsOneForIdenticalNegatedAndPermutedDictionaries()
    {
        var d = Dict();
        var v = d.FeatureVectors;
        Assert.Equal(1.0, SyntheticEvals.Mcc(v, v, compute: Compute.All), 5);
        var neg = v.Clone();
        foreach (ref float x in neg.Span) x = -x;
        Assert.Equal(1.0, SyntheticEvals.Mcc(neg, v, compute: Compute.All), 5);
        var perm = new Rng(2).Permutation(v.Rows);
        var p = Tensor.Uninitialized(v.Rows, v.Cols);
        for (int i = 0; i < perm.Length; i++) v.Row(perm[i]).CopyTo(p.Row(i));
        // Scale rows too: MCC uses cosines.
        for (int i = 0; i < p.Rows; i++) foreach (ref float x in p.Row(i)) x *= (i % 3 == 0 ? -2.5f : 0.3f);
        Assert.Equal(1.0, SyntheticEvals.Mcc(p, v, compute: Compute.All), 5);
        var order = SyntheticEvals.BestLatentOrdering(p, v, compute: Compute.All);
        for (int f = 0; f < v.Rows; f++) Assert.Equal(f, perm[order[f]]);
    }

    [Fact]
    public void MccIsBelowOneForRandomDecoderAndHandlesRectangles()
    {
        var d = Dict(24, 16);
        var other = Dict(40, 16, seed: 9).FeatureVectors;
        double mcc = SyntheticEvals.Mcc(other, d.FeatureVectors, compute: Compute.All);
        Assert.InRange(mcc, 0.1, 0.9);
        // A wider decoder that contains the dictionary plus extra latents still matches all features perfectly.
        var (wide, featureOf) = SyntheticEvals.InitDecoderToDictionary(d, 30, 0, permute: true, new Rng(3));
        Assert.Equal(1.0, SyntheticEvals.Mcc(wide, d.FeatureVectors, compute: Compute.All), 5);
        Assert.Equal(6, featureOf.Count(f => f < 0));
        var ordering = SyntheticEvals.BestLatentOrdering(wide, d.FeatureVectors, compute: Compute.All);
        Assert.Equal(Enumerable.Range(0, 30), ordering.OrderBy(i => i));
    }

    [Fact]
    public void DecoderInitialisedWithSmallNoiseScoresHighMcc()
    {
        var d = FeatureDictionary.CreateRandom(64, 32, new Rng(4), orthogonalizeSteps: 50, compute: Compute.All);
        var (w, featureOf) = SyntheticEvals.InitDecoderToDictionary(d, 64, 0.01f, permute: true, new Rng(5));
        Assert.True(SyntheticEvals.Mcc(w, d.FeatureVectors, compute: Compute.All) > 0.99);
        Assert.Equal(Enumerable.Range(0, 64), featureOf.OrderBy(i => i));
        Assert.Equal(1.0, SyntheticEvals.FeatureUniqueness(w, d.FeatureVectors, compute: Compute.All), 6);
        var (noisy, _) = SyntheticEvals.InitDecoderToDictionary(d, 64, 1f, permute: false, new Rng(5));
        Assert.True(SyntheticEvals.Mcc(noisy, d.FeatureVectors, compute: Compute.All) < 0.9);
    }

    [Fact]
    public void CopyDictionaryIntoMatchesSaeLensInit()
    {
        var d = Dict(6, 4);
        var dec = Tensor.Filled(7f, 8, 4);
        int[] order = [5, 4, 3, 2, 1, 0];
        SyntheticEvals.CopyDictionaryInto(dec, d, 0, order, new Rng(1));
        for (int i = 0; i < 6; i++) Assert.Equal(d.FeatureVectors.Row(order[i]).ToArray(), dec.Row(i).ToArray());
        Assert.All(dec.Row(7).ToArray(), v => Assert.Equal(7f, v)); // extra latents untouched
        Assert.Equal([5, 4, 3, 2, 1, 0, 6, 7], SyntheticEvals.BestFeatureOrdering(dec.RowSlice(0, 6), d.FeatureVectors, compute: Compute.All).Concat([6, 7]));
        Assert.Throws<ArgumentException>(() => SyntheticEvals.CopyDictionaryInto(dec, d, 0, [0, 0, 1, 2, 3, 4], new Rng(1)));
        Assert.Throws<ArgumentException>(() => SyntheticEvals.CopyDictionaryInto(new Tensor(3, 5), d, 0, null, new Rng(1)));
    }

    [Fact]
    public void FeatureUniquenessCountsDistinctBestMatches()
    {
        var v = Tensor.FromArray([1f, 0f, 0f, 1f], 2, 2);
        var dec = Tensor.FromArray([1f, 0.1f, 0.9f, 0.05f, 0.1f, 1f], 3, 2);
        Assert.Equal(2.0 / 3, SyntheticEvals.FeatureUniqueness(dec, v, compute: Compute.All), 9);
        Assert.Equal([0, 0, 1], SyntheticEvals.BestMatches(dec, v, compute: Compute.All));
    }

    [Fact]
    public void FiringScoresAgainstHandCounts()
    {
        var features = Tensor.FromArray([1f, 0f, 0f, 1f], 2, 2);
        var decoder = Tensor.FromArray([0f, 1f, 1f, 0f], 2, 2); // latent 0 ↔ feature 1, latent 1 ↔ feature 0
        // Feature 1 fires in samples 0, 1; latent 0 fires in 1, 2 → TP 1, FP 1, FN 1.
        var featureActs = Tensor.FromArray([0f, 1f, 1f, 2f, 0f, 0f, 1f, 0f], 4, 2);
        var latentActs = Tensor.FromArray([0f, 1f, 3f, 1f, 1f, 0f, 0f, 1f], 4, 2);
        var s = SyntheticEvals.FiringScores(latentActs, featureActs, decoder, features, compute: Compute.All);
        Assert.Equal([1, 0], s.BestFeature);
        Assert.Equal(0.5, s.Precision[0], 9); Assert.Equal(0.5, s.Recall[0], 9); Assert.Equal(0.5, s.F1[0], 9);
        // Feature 0 fires in 1, 3; latent 1 fires in 0, 1, 3 → TP 2, FP 1, FN 0.
        Assert.Equal(2.0 / 3, s.Precision[1], 9); Assert.Equal(1.0, s.Recall[1], 9); Assert.Equal(0.8, s.F1[1], 9);
        Assert.Throws<ArgumentException>(() => SyntheticEvals.FiringScores(new Tensor(3, 2), featureActs, decoder, features, compute: Compute.All));
    }

    [Fact]
    public void ScalarMetricsMatchHandComputedValues()
    {
        var acts = Tensor.FromArray([1f, 0f, 2f, 0f, 0f, 0f], 2, 3);
        Assert.Equal(1.0, SyntheticEvals.MeanL0(acts), 9);
        Assert.Equal(1, SyntheticEvals.DeadLatents(acts)); // only column 1 never fires
        var x = Tensor.FromArray([3f, 4f, 0f, 0f, 1f, 0f], 3, 2);
        var y = Tensor.FromArray([1.5f, 2f, 9f, 9f, 1f, 0f], 3, 2);
        Assert.Equal((0.5 + 1.0) / 2, SyntheticEvals.Shrinkage(x, y), 6); // the zero row is skipped
        Assert.Equal(1.0, SyntheticEvals.ExplainedVariance(x, x), 9);
        // mean (4/3, 4/3); total = (5/3)²+(8/3)²+(4/3)²·2+(1/3)²+(4/3)² = 138/9; error = 1.5²+2²+9²+9²+0 = 168.25.
        Assert.Equal(1 - 168.25 / (138.0 / 9), SyntheticEvals.ExplainedVariance(x, y), 6);
    }

    [Fact]
    public void EvaluateWithPerfectSaeGivesPerfectScores()
    {
        var d = Dict(20, 24); // more dimensions than features: the dictionary is invertible
        var gen = new ActivationGenerator(Profiles.Constant(20, 0.2));
        var (f, h) = gen.SampleHidden(d, 500, new Rng(6), compute: Compute.All);
        // "SAE" that reads the true features back: latents = features, reconstruction = hidden.
        var r = SyntheticEvals.Evaluate(f, h, f, h, d.FeatureVectors, d, compute: Compute.All);
        Assert.Equal(1.0, r.Mcc, 5);
        Assert.Equal(1.0, r.Shrinkage, 5);
        Assert.Equal(1.0, r.ExplainedVariance, 5);
        Assert.Equal(1.0, r.Firing.MeanF1, 9);
        // Both L0s average over every row (SAELens 6.35+); before 6.35 the SAE's averaged over rows with a non-zero input.
        int nonZero = Enumerable.Range(0, h.Rows).Count(i => System.Numerics.Tensors.TensorPrimitives.Norm(h.Row(i)) > 0);
        Assert.True(nonZero < h.Rows);
        Assert.Equal(r.TrueL0, r.SaeL0, 9);
        Assert.Equal(r.TrueL0 * h.Rows / nonZero, r.NonzeroRowsSaeL0, 6);
        Assert.Equal(0, r.DeadLatents);
        Assert.Equal(1.0, r.Firing.MeanAccuracy, 9);
    }

    [Fact]
    public void EvaluateAveragesOverEverySampleAsSaeLensDoes()
    {
        // Two features, identity dictionary; rows 1 and 2 have no feature firing (x = 0), and latent 1 fires on row 1.
        var d = new FeatureDictionary(Tensor.FromArray([1f, 0f, 0f, 1f], 2, 2), new Tensor(2));
        var features = Tensor.FromArray([1f, 0f, 0f, 0f, 0f, 0f, 0f, 1f], 4, 2);
        var hidden = features.Clone();
        var latents = Tensor.FromArray([1f, 0f, 1f, 0f, 1f, 0f, 0f, 0f, 0f, 0f, 0f, 1f], 4, 3);
        var recon = Tensor.FromArray([0.5f, 0f, 1f, 1f, 0f, 0f, 0f, 0.5f], 4, 2);
        var decoder = Tensor.FromArray([1f, 0f, 0f, 1f, 0f, 1f], 3, 2); // latent 0 ↔ feature 0; latents 1, 2 ↔ feature 1
        var r = SyntheticEvals.Evaluate(features, hidden, latents, recon, decoder, d, compute: Compute.All);
        Assert.Equal(0.5, r.TrueL0, 9);
        Assert.Equal(1.0, r.SaeL0, 9);               // (2 + 1 + 0 + 1) / 4
        Assert.Equal(1.5, r.NonzeroRowsSaeL0, 9);    // SAELens < 6.35: rows 0 and 3 only
        Assert.Equal(0, r.DeadLatents);
        Assert.Equal(1, r.NonzeroRowsDeadLatents);   // latent 1 fires only on a zero row
        Assert.Equal(0.5, r.Shrinkage, 6);           // zero-norm inputs are skipped: ‖x̂‖/‖x‖ = 0.5 on rows 0 and 3
        // mean x = (1/4, 1/4): Σ‖x − mean‖² = 1.5; Σ‖x − x̂‖² = 0.25 + 2 + 0 + 0.25.
        Assert.Equal(1 - 2.5 / 1.5, r.ExplainedVariance, 6);
        // Per latent over all 4 rows: latent 0 TP 1 (F1 1, accuracy 1); latent 1 TP 0 FP 1 FN 1 (F1 0, accuracy 1/2);
        // latent 2 TP 1 FP 1 (precision 1/2, recall 1, F1 2/3, accuracy 3/4).
        Assert.Equal((1 + 0 + 2.0 / 3) / 3, r.Firing.MeanF1, 9);
        Assert.Equal((1 + 0.5 + 0.75) / 3, r.Firing.MeanAccuracy, 9);
    }
}
