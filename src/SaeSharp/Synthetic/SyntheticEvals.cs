using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Synthetic;

/// <summary>Per-latent firing agreement with the latent's best-matching true feature (SAELens's <c>ClassificationMetrics</c>, per latent).</summary>
public sealed record LatentFiringScores(int[] BestFeature, double[] Precision, double[] Recall, double[] F1, double[] Accuracy)
{
    public double MeanPrecision => Precision.Average();
    public double MeanRecall => Recall.Average();
    public double MeanF1 => F1.Average();
    public double MeanAccuracy => Accuracy.Average();
}

/// <summary>
/// Ground-truth evaluation of an SAE on synthetic data: SAELens's <c>SyntheticDataEvalResult</c> with its current
/// (6.35+) definitions, every metric averaged over all samples and only shrinkage skipping inputs with ‖x‖ ≤ 1e-6.
/// <see cref="NonzeroRowsSaeL0"/> and <see cref="NonzeroRowsDeadLatents"/> are the SAELens 6.28–6.34 definitions,
/// which first dropped the samples where no true feature fires (and so overstate L0 when many samples are empty).
/// </summary>
public sealed record SyntheticEvalResult(double TrueL0, double SaeL0, int DeadLatents, double Shrinkage, double ExplainedVariance,
    double Mcc, double FeatureUniqueness, LatentFiringScores Firing, double NonzeroRowsSaeL0, int NonzeroRowsDeadLatents);

/// <summary>Metrics comparing an SAE decoder W_dec [d_sae, hidden] and its latents to the true features.</summary>
public static class SyntheticEvals
{
    /// <summary>|cos(aᵢ, bⱼ)| as an [na, nb] tensor (rows normalised with norms clamped at 1e-8).</summary>
    public static Tensor AbsCosine(Tensor a, Tensor b, Compute compute)
    {
        if (a.Rank != 2 || b.Rank != 2 || a.Dim(1) != b.Dim(1))
            throw new ArgumentException($"cosine similarity needs [na, d] and [nb, d], got [{a.ShapeString}] and [{b.ShapeString}]");
        var an = a.Clone(); FeatureDictionary.NormalizeRows(an);
        var bn = b.Clone(); FeatureDictionary.NormalizeRows(bn);
        var c = Gemm.MatMul(an, bn, compute, Trans.No, Trans.Yes);
        TensorPrimitives.Abs(c.Span, c.Span);
        return c;
    }

    /// <summary>The optimal one-to-one matching of rows of a to rows of b by |cos| (min(na, nb) pairs).</summary>
    public static (int[] A, int[] B, Tensor AbsCos) Match(Tensor a, Tensor b, Compute compute)
    {
        var cos = AbsCosine(a, b, compute);
        // Cost 1 − |cos| as float: a 16k × 16k matching then needs one extra 1 GB matrix, not 2 GB of doubles.
        var cost = GC.AllocateUninitializedArray<float>(cos.Length);
        TensorPrimitives.Subtract(1f, cos.Span, cost);
        var (ra, rb) = LinearAssignment.Solve(cost, a.Dim(0), b.Dim(0), compute);
        return (ra, rb, cos);
    }

    /// <summary>Mean correlation coefficient: mean |cos| over an optimal one-to-one matching (1 = perfect).</summary>
    public static double Mcc(Tensor decoder, Tensor features, Compute compute)
    {
        var (ra, rb, cos) = Match(decoder, features, compute);
        if (ra.Length == 0) return 0;
        double sum = 0;
        for (int k = 0; k < ra.Length; k++) sum += cos[ra[k], rb[k]];
        return sum / ra.Length;
    }

    /// <summary>For each row of a, the row of b with the highest |cos|.</summary>
    public static int[] BestMatches(Tensor a, Tensor b, Compute compute)
    {
        var cos = AbsCosine(a, b, compute);
        var best = new int[a.Dim(0)];
        for (int i = 0; i < best.Length; i++) best[i] = TensorPrimitives.IndexOfMax(cos.Row(i));
        return best;
    }

    /// <summary>Distinct true features that are some latent's best match, divided by the number of latents (1 = every latent tracks its own feature).</summary>
    public static double FeatureUniqueness(Tensor decoder, Tensor features, Compute compute)
    {
        var best = BestMatches(decoder, features, compute);
        return best.Length == 0 ? 0 : (double)best.Distinct().Count() / best.Length;
    }

    /// <summary>
    /// Precision, recall and F1 of "latent i fires" (activation &gt; 0) as a predictor of "its best-matching true feature
    /// fires", over the samples of <paramref name="latentActs"/> [samples, d_sae] and <paramref name="featureActs"/> [samples, n].
    /// Undefined ratios (no predictions, no positives) count as 0.
    /// </summary>
    public static LatentFiringScores FiringScores(Tensor latentActs, Tensor featureActs, Tensor decoder, Tensor features, Compute compute)
    {
        int samples = latentActs.Dim(0), dSae = decoder.Dim(0);
        latentActs.EnsureShape("latent activations", samples, dSae);
        featureActs.EnsureShape("true feature activations", samples, features.Dim(0));
        var best = BestMatches(decoder, features, compute);
        long[] tp = new long[dSae], fp = new long[dSae], fn = new long[dSae];
        for (int s = 0; s < samples; s++)
        {
            var l = latentActs.Row(s); var f = featureActs.Row(s);
            for (int i = 0; i < dSae; i++)
            {
                bool pred = l[i] > 0, truth = f[best[i]] > 0;
                if (pred && truth) tp[i]++;
                else if (pred) fp[i]++;
                else if (truth) fn[i]++;
            }
        }
        var p = new double[dSae]; var r = new double[dSae]; var f1 = new double[dSae]; var acc = new double[dSae];
        for (int i = 0; i < dSae; i++)
        {
            p[i] = tp[i] + fp[i] == 0 ? 0 : (double)tp[i] / (tp[i] + fp[i]);
            r[i] = tp[i] + fn[i] == 0 ? 0 : (double)tp[i] / (tp[i] + fn[i]);
            f1[i] = p[i] + r[i] == 0 ? 0 : 2 * p[i] * r[i] / (p[i] + r[i]);
            acc[i] = samples == 0 ? 0 : (double)(samples - fp[i] - fn[i]) / samples; // (TP + TN) / samples
        }
        return new LatentFiringScores(best, p, r, f1, acc);
    }

    /// <summary>Mean number of entries &gt; 0 per row.</summary>
    public static double MeanL0(Tensor acts)
    {
        if (acts.Rows == 0) return 0;
        long count = 0;
        foreach (float v in acts.Span) if (v > 0) count++;
        return (double)count / acts.Rows;
    }

    /// <summary>Columns that are never &gt; 0.</summary>
    public static int DeadLatents(Tensor latentActs)
    {
        var alive = new bool[latentActs.Cols];
        for (int r = 0; r < latentActs.Rows; r++)
        {
            var row = latentActs.Row(r);
            for (int j = 0; j < row.Length; j++) if (row[j] > 0) alive[j] = true;
        }
        return alive.Count(a => !a);
    }

    /// <summary>Inputs with ‖x‖ at or below this are skipped by <see cref="Shrinkage"/> (SAELens's min_input_norm).</summary>
    public const float MinShrinkageInputNorm = 1e-6f;

    /// <summary>Mean ‖x̂‖ / ‖x‖ over rows with ‖x‖ &gt; 1e-6, where the ratio is defined (1 = no shrinkage); 0 when there are none.</summary>
    public static double Shrinkage(Tensor input, Tensor reconstruction)
    {
        reconstruction.EnsureShape("reconstruction", input.Shape.ToArray());
        double sum = 0; int count = 0;
        for (int r = 0; r < input.Rows; r++)
        {
            float nx = TensorPrimitives.Norm(input.Row(r));
            if (nx <= MinShrinkageInputNorm) continue;
            sum += TensorPrimitives.Norm(reconstruction.Row(r)) / nx;
            count++;
        }
        return count == 0 ? 0 : sum / count;
    }

    /// <summary>1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖².</summary>
    public static double ExplainedVariance(Tensor input, Tensor reconstruction) => SaeSharp.Saes.Reconstruction.ExplainedVariance(input, reconstruction);

    /// <summary>
    /// Everything at once, over every sample as SAELens 6.35+ does. <paramref name="hidden"/> [samples, hidden] are the
    /// SAE inputs made from <paramref name="featureActs"/>. The SAELens 6.28–6.34 SAE L0 and dead-latent count, which
    /// first dropped rows with ‖x‖ = 0, are reported beside them.
    /// </summary>
    public static SyntheticEvalResult Evaluate(Tensor featureActs, Tensor hidden, Tensor latentActs, Tensor reconstruction,
        Tensor decoder, FeatureDictionary dictionary, Compute compute)
    {
        var keep = Enumerable.Range(0, hidden.Rows).Where(r => TensorPrimitives.Norm(hidden.Row(r)) > 0).ToArray();
        var nonzeroLatents = Tensor.Uninitialized(keep.Length, latentActs.Cols);
        for (int k = 0; k < keep.Length; k++) latentActs.Row(keep[k]).CopyTo(nonzeroLatents.Row(k));
        return new SyntheticEvalResult(MeanL0(featureActs), MeanL0(latentActs), DeadLatents(latentActs), Shrinkage(hidden, reconstruction),
            ExplainedVariance(hidden, reconstruction), Mcc(decoder, dictionary.FeatureVectors, compute),
            FeatureUniqueness(decoder, dictionary.FeatureVectors, compute), FiringScores(latentActs, featureActs, decoder, dictionary.FeatureVectors, compute),
            MeanL0(nonzeroLatents), DeadLatents(nonzeroLatents));
    }

    /// <summary>
    /// An ordering of the SAE latents for plots: latent matched (optimally) to true feature 0 first, then feature 1, ...;
    /// unmatched latents follow in index order.
    /// </summary>
    public static int[] BestLatentOrdering(Tensor decoder, Tensor features, Compute compute)
    {
        var (ra, rb, _) = Match(decoder, features, compute);
        var order = ra.Zip(rb).OrderBy(p => p.Second).Select(p => p.First).ToList();
        var used = new HashSet<int>(order);
        order.AddRange(Enumerable.Range(0, decoder.Dim(0)).Where(i => !used.Contains(i)));
        return order.ToArray();
    }

    /// <summary>
    /// SAELens's plot ordering: latents sorted (stably) by the index of their best-matching true feature (highest |cos|),
    /// so latents that track feature 0 come first. Unlike <see cref="BestLatentOrdering"/>, several latents may share a feature.
    /// </summary>
    public static int[] BestFeatureOrdering(Tensor decoder, Tensor features, Compute compute)
    {
        var best = BestMatches(decoder, features, compute);
        return Enumerable.Range(0, best.Length).OrderBy(i => best[i]).ToArray();
    }

    /// <summary>
    /// SAELens's <c>init_sae_to_match_feature_dict</c> on a decoder W_dec [d_sae, hidden]: rows [0, min(d_sae, n)) become
    /// feature <c>ordering[i]</c> (or i) plus N(0, noiseLevel²) noise, with no renormalisation; later rows are left as
    /// they are. An SAE then sets W_enc = W_decᵀ.
    /// </summary>
    public static void CopyDictionaryInto(Tensor decoder, FeatureDictionary dictionary, float noiseLevel, int[]? ordering, Rng rng)
    {
        if (decoder.Rank != 2 || decoder.Dim(1) != dictionary.HiddenDim)
            throw new ArgumentException($"decoder: expected [d_sae, {dictionary.HiddenDim}], got [{decoder.ShapeString}]");
        if (!(noiseLevel >= 0)) throw new ArgumentOutOfRangeException(nameof(noiseLevel), $"noise level must be non-negative, got {noiseLevel}");
        int n = dictionary.NumFeatures;
        if (ordering is not null && (ordering.Length != n || ordering.Distinct().Count() != n || ordering.Any(i => (uint)i >= (uint)n)))
            throw new ArgumentException($"feature ordering must be a permutation of [0, {n})");
        int rows = Math.Min(decoder.Dim(0), n);
        for (int i = 0; i < rows; i++)
        {
            var row = decoder.Row(i);
            dictionary.FeatureVectors.Row(ordering?[i] ?? i).CopyTo(row);
            if (noiseLevel > 0) for (int j = 0; j < row.Length; j++) row[j] += noiseLevel * (float)rng.Normal();
        }
    }

    /// <summary>
    /// A decoder W_dec [dSae, hidden] whose rows are the dictionary's feature vectors (latent i gets feature perm[i]
    /// when <paramref name="permute"/>, else feature i), plus N(0, noiseStd²) noise, renormalised to unit rows. Latents
    /// beyond num_features get random unit vectors. Returns the feature of each latent (−1 for the extras).
    /// </summary>
    public static (Tensor Decoder, int[] FeatureOfLatent) InitDecoderToDictionary(FeatureDictionary dictionary, int dSae, float noiseStd, bool permute, Rng rng)
    {
        if (dSae <= 0) throw new ArgumentOutOfRangeException(nameof(dSae), $"d_sae must be positive, got {dSae}");
        if (!(noiseStd >= 0)) throw new ArgumentOutOfRangeException(nameof(noiseStd), $"noise std must be non-negative, got {noiseStd}");
        int n = dictionary.NumFeatures, h = dictionary.HiddenDim;
        var w = Tensor.Uninitialized(dSae, h);
        var perm = permute ? rng.Permutation(n) : Enumerable.Range(0, n).ToArray();
        var featureOf = new int[dSae];
        for (int i = 0; i < dSae; i++)
        {
            var row = w.Row(i);
            if (i < n)
            {
                featureOf[i] = perm[i];
                dictionary.FeatureVectors.Row(perm[i]).CopyTo(row);
                if (noiseStd > 0) for (int j = 0; j < h; j++) row[j] += noiseStd * (float)rng.Normal();
            }
            else
            {
                featureOf[i] = -1;
                rng.FillNormal(row);
            }
        }
        FeatureDictionary.NormalizeRows(w);
        return (w, featureOf);
    }
}
