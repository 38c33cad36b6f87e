using System.Numerics.Tensors;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Analysis;

/// <summary>
/// Another SAE's latents matched one-to-one to a reference SAE's, per reference latent: <see cref="Partner"/> (the
/// other SAE's latent, −1 for none) and <see cref="Distance"/> (1 − cosine similarity; NaN for a latent dead in the
/// reference, 1 for a live one left without a partner), with the latents of either SAE that are dead over the tokens
/// (none when matching decoders). <see cref="Rounds"/>, <see cref="RowsRead"/> and <see cref="CandidatePairs"/> describe the
/// assignment solve (<see cref="Assignment"/>).
/// </summary>
public sealed record FeatureMatch(int[] Partner, double[] Distance, bool[] DeadReference, bool[] DeadOther, int Rounds, long RowsRead, long CandidatePairs)
{
    public int ReferenceLatents => Partner.Length;
    public int OtherLatents => DeadOther.Length;
}

/// <summary>
/// Matching SAE features as the "Match SAE Features Through Training" notebook does: every latent's activations over
/// the same tokens (sparse codes, entries at or below a threshold dropped), the cosine similarity of every reference
/// latent's activation column with every other latent's, and the optimal one-to-one assignment on distance 1 − cosine
/// (<see cref="LinearAssignment"/>). Dead latents (no activation over the tokens) take no part in the assignment:
/// with non-negative activations (every SaeSharp architecture) their distance to anything is 1, the largest there is,
/// so leaving them out changes no live pair of the notebook's full assignment. Data-free matching compares decoder
/// rows instead (<see cref="ByDecoders"/>), as matching across seeds and widths does.
/// </summary>
public static class FeatureMatching
{
    /// <summary>
    /// Matches <paramref name="other"/>'s latents to <paramref name="reference"/>'s by the cosine of their activation
    /// columns over the same rows (tokens). The cosines are aᵀ·b sparse products (<see cref="SparseKernels.TransposedProduct"/>)
    /// normalised by column norms, computed in blocks of rows (<see cref="AssignmentOptions.BlockEntries"/>) when the
    /// solver reads them, so memory stays bounded for 16k × 16k.
    /// </summary>
    public static FeatureMatch ByActivations(SparseCodes reference, SparseCodes other, Compute compute, AssignmentOptions? options = null)
    {
        if (reference.Rows != other.Rows)
            throw new ArgumentException($"activations over {reference.Rows} and {other.Rows} tokens; both SAEs must be run on the same tokens");
        var c = compute;
        var (refAlive, refNorm) = LiveColumns(reference);
        var (otherAlive, otherNorm) = LiveColumns(other);
        var partner = new int[reference.Cols];
        Array.Fill(partner, -1);
        var distance = new double[reference.Cols];
        Array.Fill(distance, 1.0);
        var deadRef = Dead(reference);
        var deadOther = Dead(other);
        for (int i = 0; i < deadRef.Length; i++) if (deadRef[i]) distance[i] = double.NaN;
        if (refAlive.Length == 0 || otherAlive.Length == 0) return new FeatureMatch(partner, distance, deadRef, deadOther, 0, 0, 0);

        // The solver's rows are the smaller side; cosines are symmetric, so either SAE can be it.
        bool refRows = refAlive.Length <= otherAlive.Length;
        var (rows, rowNorm, rowIds) = refRows ? (reference.SelectColumns(refAlive), refNorm, refAlive) : (other.SelectColumns(otherAlive), otherNorm, otherAlive);
        var (cols, colNorm, colIds) = refRows ? (other.SelectColumns(otherAlive), otherNorm, otherAlive) : (reference.SelectColumns(refAlive), refNorm, refAlive);
        var rowColumns = rows.ToColumns();
        var inverseColNorm = colNorm.Select(n => 1 / n).ToArray();
        int width = cols.Cols;
        var a = LinearAssignment.Solve(rows.Cols, width, (which, count, dest) =>
        {
            SparseKernels.TransposedProduct(rowColumns, cols, which, count, dest, c);
            c.ForRange(count, 4, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    var o = dest.AsSpan(r * width, width);
                    TensorPrimitives.Multiply(o, -1 / rowNorm[which[r]], o);
                    TensorPrimitives.MultiplyAdd(o, inverseColNorm, 1.0, o); // 1 − cos
                }
            });
        }, c, options);
        for (int k = 0; k < a.Rows.Length; k++)
        {
            int i = refRows ? rowIds[a.Rows[k]] : colIds[a.Cols[k]];
            int j = refRows ? colIds[a.Cols[k]] : rowIds[a.Rows[k]];
            partner[i] = j;
            distance[i] = a.Costs[k];
        }
        return new FeatureMatch(partner, distance, deadRef, deadOther, a.Rounds, a.RowsRead, a.CandidatePairs);
    }

    /// <summary>
    /// Data-free matching: the optimal one-to-one assignment on 1 − cos of decoder rows (<c>W_dec</c> [d_sae, d_in]),
    /// computed in blocks of GEMMs. No latent is dead here.
    /// </summary>
    public static FeatureMatch ByDecoders(Tensor referenceDecoder, Tensor otherDecoder, Compute compute, AssignmentOptions? options = null)
    {
        CheckDecoders(referenceDecoder, otherDecoder);
        var c = compute;
        int nRef = referenceDecoder.Rows, nOther = otherDecoder.Rows;
        var partner = new int[nRef];
        Array.Fill(partner, -1);
        var distance = new double[nRef];
        Array.Fill(distance, 1.0);
        bool refRows = nRef <= nOther;
        var rows = UnitRows(refRows ? referenceDecoder : otherDecoder);
        var cols = UnitRows(refRows ? otherDecoder : referenceDecoder);
        var a = LinearAssignment.Solve(rows.Rows, cols.Rows, (which, count, dest) =>
        {
            var block = Tensor.Uninitialized(count, rows.Cols);
            for (int r = 0; r < count; r++) rows.Row(which[r]).CopyTo(block.Row(r));
            var cos = Gemm.MatMul(block, cols, c, Trans.No, Trans.Yes).Span;
            for (int i = 0; i < cos.Length; i++) dest[i] = 1 - (double)cos[i];
        }, c, options);
        for (int k = 0; k < a.Rows.Length; k++)
        {
            int i = refRows ? a.Rows[k] : a.Cols[k], j = refRows ? a.Cols[k] : a.Rows[k];
            partner[i] = j;
            distance[i] = a.Costs[k];
        }
        return new FeatureMatch(partner, distance, new bool[nRef], new bool[nOther], a.Rounds, a.RowsRead, a.CandidatePairs);
    }

    /// <summary>
    /// Mean max cosine similarity (MMCS): for every reference decoder row, its largest cosine with any row of the
    /// other decoder, averaged over the reference's rows.
    /// </summary>
    public static double MeanMaxCosine(Tensor referenceDecoder, Tensor otherDecoder, Compute compute)
    {
        CheckDecoders(referenceDecoder, otherDecoder);
        var c = compute;
        var rows = UnitRows(referenceDecoder);
        var cols = UnitRows(otherDecoder);
        int block = Math.Max(1, (1 << 22) / Math.Max(1, cols.Rows));
        double sum = 0;
        for (int start = 0; start < rows.Rows; start += block)
        {
            var cos = Gemm.MatMul(rows.RowSlice(start, Math.Min(block, rows.Rows - start)), cols, c, Trans.No, Trans.Yes);
            for (int r = 0; r < cos.Rows; r++) sum += TensorPrimitives.Max(cos.Row(r));
        }
        return rows.Rows == 0 ? double.NaN : sum / rows.Rows;
    }

    /// <summary>Cosine of each reference decoder row with its partner's (NaN without a partner, or when d_in differs).</summary>
    public static double[] PairDecoderCosines(Tensor referenceDecoder, Tensor otherDecoder, IReadOnlyList<int> partner)
    {
        var result = new double[referenceDecoder.Rows];
        Array.Fill(result, double.NaN);
        if (referenceDecoder.Cols != otherDecoder.Cols) return result;
        for (int i = 0; i < result.Length; i++)
        {
            if (partner[i] < 0) continue;
            var x = referenceDecoder.Row(i);
            var y = otherDecoder.Row(partner[i]);
            double nx = TensorPrimitives.Norm(x), ny = TensorPrimitives.Norm(y);
            result[i] = nx == 0 || ny == 0 ? 0 : TensorPrimitives.Dot(x, y) / (nx * ny);
        }
        return result;
    }

    /// <summary>
    /// Drops every entry whose magnitude is at or below <paramref name="threshold"/> (the notebook's sparsity threshold;
    /// 0 drops exact zeros only). Returns new codes; the input is unchanged.
    /// </summary>
    public static SparseCodes DropSmall(SparseCodes codes, double threshold)
    {
        if (!(threshold >= 0)) throw new ArgumentException($"sparsity threshold must be a non-negative number, got {threshold}");
        var counts = new int[codes.Rows];
        for (int r = 0; r < codes.Rows; r++)
            for (int e = codes.RowStart[r]; e < codes.RowStart[r + 1]; e++) if (Math.Abs(codes.Value[e]) > threshold) counts[r]++;
        var kept = SparseCodes.FromRowCounts(codes.Cols, counts);
        for (int r = 0; r < codes.Rows; r++)
        {
            int w = kept.RowStart[r];
            for (int e = codes.RowStart[r]; e < codes.RowStart[r + 1]; e++)
                if (Math.Abs(codes.Value[e]) > threshold) { kept.Index[w] = codes.Index[e]; kept.Value[w++] = codes.Value[e]; }
        }
        return kept;
    }

    /// <summary>Counts of <paramref name="values"/> in <paramref name="bins"/> equal bins over [lo, hi] (values outside go to the end bins).</summary>
    public static int[] Histogram(IEnumerable<double> values, double lo, double hi, int bins)
    {
        if (bins < 1 || !(hi > lo)) throw new ArgumentException($"histogram needs bins >= 1 and hi > lo, got {bins} bins over [{lo}, {hi}]");
        var counts = new int[bins];
        foreach (double v in values)
            if (!double.IsNaN(v)) counts[Math.Clamp((int)Math.Floor((v - lo) / (hi - lo) * bins), 0, bins - 1)]++;
        return counts;
    }

    /// <summary>Per latent (column): dead, i.e. no non-zero activation over the rows.</summary>
    public static bool[] Dead(SparseCodes codes)
    {
        var dead = new bool[codes.Cols];
        Array.Fill(dead, true);
        for (int e = 0; e < codes.Count; e++) if (codes.Value[e] != 0) dead[codes.Index[e]] = false;
        return dead;
    }

    /// <summary>Columns with at least one non-zero entry, ascending, and their Euclidean norms.</summary>
    private static (int[] Alive, double[] Norm) LiveColumns(SparseCodes codes)
    {
        var norm = new double[codes.Cols];
        for (int e = 0; e < codes.Count; e++)
        {
            double v = codes.Value[e];
            if (!double.IsFinite(v)) throw new ArgumentException($"latent {codes.Index[e]} has a non-finite activation ({v})");
            norm[codes.Index[e]] += v * v;
        }
        var dead = Dead(codes);
        var alive = Enumerable.Range(0, codes.Cols).Where(j => !dead[j]).ToArray();
        for (int j = 0; j < norm.Length; j++) norm[j] = Math.Sqrt(norm[j]);
        return (alive, alive.Select(j => norm[j]).ToArray());
    }

    private static void CheckDecoders(Tensor a, Tensor b)
    {
        if (a.Rank != 2 || b.Rank != 2 || a.Cols != b.Cols)
            throw new ArgumentException($"decoder matching needs W_dec [d_sae, d_in] of equal d_in, got [{a.ShapeString}] and [{b.ShapeString}]");
    }

    /// <summary>A copy with unit rows (zero rows stay zero).</summary>
    private static Tensor UnitRows(Tensor w)
    {
        var u = w.Clone();
        FeatureDictionary.NormalizeRows(u);
        return u;
    }
}
