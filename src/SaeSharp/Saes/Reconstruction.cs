using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>Reconstruction quality of an SAE on a batch: the one definition used by training logs and evals.</summary>
public static class Reconstruction
{
    /// <summary>
    /// 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖² over the rows (= 1 − E‖x−x̂‖² / (E‖x‖² − ‖E x‖²)), computed in two passes
    /// in float64. A batch with no variance gives 1 when reconstructed exactly, −∞ otherwise. (The eval's streamed
    /// explained_variance, SaeSharp.Evals.ReconstructionStats, is the same quantity about the mean of all its batches.)
    /// </summary>
    public static double ExplainedVariance(Tensor input, Tensor reconstruction)
    {
        reconstruction.EnsureShape("reconstruction", input.Shape.ToArray());
        var mean = ColumnMeans(input, default, out _);
        double err = 0, total = 0;
        for (int r = 0; r < input.Rows; r++)
        {
            var x = input.Row(r); var y = reconstruction.Row(r);
            for (int j = 0; j < x.Length; j++)
            {
                double e = x[j] - y[j], t = x[j] - mean[j];
                err += e * e; total += t * t;
            }
        }
        return ExplainedFraction(err, total);
    }

    /// <summary>
    /// Mean over elements of (x − x̂)² (drrik's val_loss, the training log's <c>mse</c>). The eval's SAELens
    /// <c>mse</c> is per token instead: the mean over rows of Σ_d (x − x̂)², i.e. this times d.
    /// </summary>
    public static double Mse(Tensor x, Tensor reconstruction)
    {
        reconstruction.EnsureShape("reconstruction", x.Shape.ToArray());
        double err = 0;
        var a = x.Span; var b = reconstruction.Span;
        for (int i = 0; i < a.Length; i++) { double e = a[i] - b[i]; err += e * e; }
        return err / Math.Max(1, a.Length);
    }

    /// <summary>1 − residual/total, with a variance-free input giving 1 when reconstructed exactly and −∞ otherwise.</summary>
    internal static double ExplainedFraction(double residual, double total) =>
        total == 0 ? (residual == 0 ? 1 : double.NegativeInfinity) : 1 - residual / total;

    /// <summary>Column means in float64 of the rows <paramref name="keep"/> selects (all when empty), and how many there were.</summary>
    internal static double[] ColumnMeans(Tensor x, ReadOnlySpan<bool> keep, out long count)
    {
        var mean = new double[x.Cols];
        count = 0;
        for (int r = 0; r < x.Rows; r++)
        {
            if (!keep.IsEmpty && !keep[r]) continue;
            var row = x.Row(r);
            for (int j = 0; j < row.Length; j++) mean[j] += row[j];
            count++;
        }
        for (int j = 0; j < mean.Length; j++) mean[j] /= Math.Max(count, 1);
        return mean;
    }
}
