using System.Numerics.Tensors;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Evals;

/// <summary>
/// SAELens's sparsity metrics and firing-based per-feature statistics, streamed over batches. A latent fires at a
/// position when its activation is above zero (SAELens: <c>feature_acts &gt; 0</c>).
/// <list type="bullet">
/// <item><c>l0</c>: mean firing latents per position; <c>l1</c>: mean sum of activations per position;</item>
/// <item><c>feature_density[j]</c>: share of positions where latent j fires;</item>
/// <item><c>consistent_activation_heuristic[j]</c>: firings of j per sequence in which j fires at least once (NaN
/// when it never fires, as SAELens's 0/0).</item>
/// </list>
/// </summary>
public sealed class FeatureStats(int dSae)
{
    private readonly long[] _fires = new long[dSae];
    private readonly long[] _sequences = new long[dSae];
    private readonly int[] _lastSequence = Enumerable.Repeat(-1, dSae).ToArray();
    private int _sequenceId;
    private double _l0, _l1;

    /// <summary>Positions added.</summary>
    public long Count { get; private set; }

    /// <summary>
    /// Adds the kept rows of one batch's latents (rows = sequence·<paramref name="seqLen"/> + position, see
    /// <see cref="LatentBatch"/>): the sparse codes when the forward has them, else its dense features.
    /// </summary>
    public void Add(SaeForward forward, ReadOnlySpan<bool> keep, int seqLen)
    {
        if (forward.Codes is { } codes) Add(codes, keep, seqLen);
        else Add(forward.DenseFeatures(), keep, seqLen);
    }

    /// <summary>Adds dense latents <c>[rows, d_sae]</c>.</summary>
    public void Add(Tensor dense, ReadOnlySpan<bool> keep, int seqLen)
    {
        Check(dense.Rows, dense.Cols, keep, seqLen);
        for (int r = 0; r < dense.Rows; r++)
        {
            if (!Begin(r, keep, seqLen)) continue;
            var row = dense.Row(r);
            for (int j = 0; j < row.Length; j++) if (row[j] != 0) Record(j, row[j]);
        }
    }

    /// <summary>Adds sparse latent codes.</summary>
    public void Add(SparseCodes codes, ReadOnlySpan<bool> keep, int seqLen)
    {
        Check(codes.Rows, codes.Cols, keep, seqLen);
        for (int r = 0; r < codes.Rows; r++)
        {
            if (!Begin(r, keep, seqLen)) continue;
            var idx = codes.RowIndex(r); var val = codes.RowValue(r);
            for (int e = 0; e < idx.Length; e++) Record(idx[e], val[e]);
        }
    }

    private void Check(int rows, int cols, ReadOnlySpan<bool> keep, int seqLen)
    {
        if (cols != _fires.Length) throw new ArgumentException($"latents have {cols} columns, d_sae is {_fires.Length}");
        if (keep.Length != rows) throw new ArgumentException($"keep mask has {keep.Length} entries for {rows} rows");
        if (seqLen < 1 || rows % seqLen != 0) throw new ArgumentException($"{rows} rows are not whole sequences of {seqLen} positions");
    }

    /// <summary>Starts row r: a new sequence at its first position; whether the row counts.</summary>
    private bool Begin(int r, ReadOnlySpan<bool> keep, int seqLen)
    {
        if (r % seqLen == 0) _sequenceId++;
        if (!keep[r]) return false;
        Count++;
        return true;
    }

    private void Record(int j, float value)
    {
        _l1 += value;
        if (!(value > 0)) return;
        _l0++;
        _fires[j]++;
        if (_lastSequence[j] != _sequenceId) { _lastSequence[j] = _sequenceId; _sequences[j]++; }
    }

    public double L0 => _l0 / Count;
    public double L1 => _l1 / Count;
    public float[] FeatureDensity() => _fires.Select(f => (float)((double)f / Count)).ToArray();
    public float[] ConsistentActivationHeuristic() => _fires.Zip(_sequences, (f, s) => (float)((double)f / s)).ToArray();
}

/// <summary>
/// Per-latent statistics of an SAE's weights for the eval (SAELens get_featurewise_weight_based_metrics and SAEBench
/// core's max cosine similarities; encoder_decoder_cosine_sim is <see cref="WeightStatistics.EncoderDecoderCosines"/>).
/// Encoder vectors are the columns of W_enc, decoder vectors the rows of W_dec; a zero vector has cosine 0 with everything.
/// </summary>
public static class FeatureWeights
{
    /// <summary>encoder_norm[j] = ‖W_enc[:, j]‖.</summary>
    public static float[] EncoderNorms(Sae sae) => Ops.RowNorms(Ops.Transpose(sae.WEnc, sae.Compute));

    /// <summary>encoder_bias: b_enc, or b_mag for gated SAEs (as SAEBench), zeros when the SAE has neither.</summary>
    public static float[] EncoderBias(Sae sae) =>
        sae.Params.Contains("b_enc") ? sae.Params["b_enc"].ToArray()
        : sae.Params.Contains("b_mag") ? sae.Params["b_mag"].ToArray()
        : new float[sae.Config.DSae];

    /// <summary>max_encoder_cosine_sim[j]: the largest cosine between latent j's encoder vector and any other latent's.</summary>
    public static float[] MaxEncoderCosine(Sae sae, Compute compute) => MaxCosineToOthers(Ops.Transpose(sae.WEnc, compute: compute), compute);

    /// <summary>max_decoder_cosine_sim[j]: the same for decoder vectors.</summary>
    public static float[] MaxDecoderCosine(Sae sae, Compute compute) => MaxCosineToOthers(sae.WDec, compute);

    /// <summary>
    /// For each row of <paramref name="vectors"/> <c>[n, d]</c>, the largest cosine with any other row (−∞ for a single
    /// row). Rows are normalised, then the Gram matrix is taken in blocks of rows by GEMM, never whole.
    /// </summary>
    public static float[] MaxCosineToOthers(Tensor vectors, Compute compute)
    {
        int n = vectors.Rows, d = vectors.Cols;
        var unit = vectors.Clone();
        for (int i = 0; i < n; i++)
        {
            float norm = TensorPrimitives.Norm(unit.Row(i));
            if (norm > 0) TensorPrimitives.Divide(unit.Row(i), norm, unit.Row(i));
        }
        const int Block = 256;
        var max = new float[n];
        var gram = Tensor.Uninitialized(Math.Min(Block, n), n);
        for (int start = 0; start < n; start += Block)
        {
            int rows = Math.Min(Block, n - start);
            var g = gram.RowSlice(0, rows);
            Gemm.Multiply(Trans.No, Trans.Yes, rows, n, d, 1f, unit.Span[(start * d)..], d, unit.Span, d, 0f, g.Span, n, compute);
            for (int i = 0; i < rows; i++)
            {
                var row = g.Row(i);
                row[start + i] = float.NegativeInfinity;
                max[start + i] = n == 1 ? float.NegativeInfinity : TensorPrimitives.Max(row);
            }
        }
        return max;
    }
}

/// <summary>SAEBench core's misc_metrics from the per-feature arrays.</summary>
public static class FeatureSummary
{
    /// <summary>
    /// frac_alive (density &gt; 0), freq_over_1_percent / freq_over_10_percent (share of latents with density above
    /// 1% / 10%), normalized_freq_over_1_percent / _10_percent (their share of the total density), and the averages of
    /// the max encoder / decoder cosines when given.
    /// </summary>
    public static Dictionary<string, double> Misc(float[] density, float[]? maxEncoderCosine, float[]? maxDecoderCosine)
    {
        double total = density.Sum(d => (double)d);
        double Share(Func<float, bool> p) => density.Count(p) / (double)density.Length;
        double Mass(double cut) => total > 0 ? density.Where(d => d > cut).Sum(d => (double)d) / total : 0;
        var m = new Dictionary<string, double>
        {
            ["frac_alive"] = Share(d => d > 0),
            ["freq_over_1_percent"] = Share(d => d > 0.01),
            ["freq_over_10_percent"] = Share(d => d > 0.1),
            ["normalized_freq_over_1_percent"] = Mass(0.01),
            ["normalized_freq_over_10_percent"] = Mass(0.1),
        };
        if (maxEncoderCosine is not null) m["average_max_encoder_cosine_sim"] = maxEncoderCosine.Average(v => (double)v);
        if (maxDecoderCosine is not null) m["average_max_decoder_cosine_sim"] = maxDecoderCosine.Average(v => (double)v);
        return m;
    }
}
