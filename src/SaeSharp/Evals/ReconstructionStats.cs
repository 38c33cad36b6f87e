using SaeSharp.Saes;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Evals;

/// <summary>
/// SAELens's reconstruction_quality and shrinkage metrics (sae_lens/evals.py, 6.45 and later) streamed over eval
/// batches in float64. Each <see cref="Add"/> is one eval batch of (x, x̂) rows:
/// <list type="bullet">
/// <item><c>explained_variance</c> = 1 − E‖x − x̂‖² / Σ_d Var(x_d), the variance about the mean of every row added
/// (per-dimension means and squared deviations merged batch by batch, Chan et al.);</item>
/// <item><c>explained_variance_legacy</c> = the mean over rows of 1 − ‖x − x̂‖² / ‖x − x̄_batch‖², x̄_batch the mean of
/// that row's batch;</item>
/// <item><c>mse</c> = E‖x − x̂‖² (summed over dimensions, mean over rows: independent of the batch size);</item>
/// <item><c>cossim</c> = E cos(x, x̂) (a zero row against a zero row counts 1, against a non-zero one 0);</item>
/// <item><c>l2_norm_in</c> = E‖x‖, <c>l2_norm_out</c> = E‖x̂‖, <c>l2_ratio</c> = E ‖x̂‖/‖x‖ (‖x‖ below 1e-4 divides by 1);</item>
/// <item><c>relative_reconstruction_bias</c> = E‖x̂‖² / E⟨x, x̂⟩ (Rajamanoharan et al. 2024, eq. 10), over all rows
/// added (SAELens averages the per-batch ratio).</item>
/// </list>
/// </summary>
public sealed class ReconstructionStats(int dim)
{
    private readonly double[] _mean = new double[dim];
    private double _m2, _residual, _legacy, _cos, _normIn, _normOut, _ratio, _outSquared, _dot;

    /// <summary>Rows added so far.</summary>
    public long Count { get; private set; }

    /// <summary>Adds one eval batch: the rows of <paramref name="input"/> and <paramref name="reconstruction"/> that <paramref name="keep"/> selects (all when empty).</summary>
    public void Add(Tensor input, Tensor reconstruction, ReadOnlySpan<bool> keep = default)
    {
        input.EnsureShape("input", input.Rows, _mean.Length);
        reconstruction.EnsureShape("reconstruction", input.Rows, _mean.Length);
        if (!keep.IsEmpty && keep.Length != input.Rows) throw new ArgumentException($"keep mask has {keep.Length} entries for {input.Rows} rows");
        var batchMean = Reconstruction.ColumnMeans(input, keep, out long n);
        if (n == 0) return;
        double batchM2 = 0;
        for (int r = 0; r < input.Rows; r++)
        {
            if (!keep.IsEmpty && !keep[r]) continue;
            var x = input.Row(r); var y = reconstruction.Row(r);
            double dev = 0, res = 0, xx = 0, yy = 0, xy = 0;
            for (int j = 0; j < x.Length; j++)
            {
                double xv = x[j], yv = y[j], d = xv - batchMean[j], e = xv - yv;
                dev += d * d; res += e * e; xx += xv * xv; yy += yv * yv; xy += xv * yv;
            }
            batchM2 += dev;
            _residual += res;
            _legacy += 1 - res / dev;
            double nx = Math.Sqrt(xx), ny = Math.Sqrt(yy);
            _cos += nx == 0 || ny == 0 ? (nx == ny ? 1 : 0) : xy / (nx * ny);
            _normIn += nx;
            _normOut += ny;
            _ratio += ny / (nx < 1e-4 ? 1 : nx);
            _outSquared += yy;
            _dot += xy;
        }
        // Merge the batch's mean and squared deviations into the running ones.
        long total = Count + n;
        double between = 0;
        for (int j = 0; j < _mean.Length; j++)
        {
            double delta = batchMean[j] - _mean[j];
            between += delta * delta;
            _mean[j] += delta * n / total;
        }
        _m2 += batchM2 + between * Count * n / total;
        Count = total;
    }

    public double ExplainedVariance => Count == 0 ? double.NaN : Reconstruction.ExplainedFraction(_residual, _m2);
    public double ExplainedVarianceLegacy => _legacy / Count;
    public double Mse => _residual / Count;
    public double CosineSimilarity => _cos / Count;
    public double L2NormIn => _normIn / Count;
    public double L2NormOut => _normOut / Count;
    public double L2Ratio => _ratio / Count;
    public double RelativeReconstructionBias => _outSquared / _dot;
}
