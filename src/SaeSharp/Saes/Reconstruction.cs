using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>Reconstruction quality of an SAE on a batch: the one definition used by training logs and evals.</summary>
public static class Reconstruction
{
    /// <summary>
    /// 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖² over the rows (= 1 − E‖x−x̂‖² / (E‖x‖² − ‖E x‖²)), computed in two passes
    /// in float64. A batch with no variance gives 1 when reconstructed exactly, −∞ otherwise.
    /// </summary>
    public static double ExplainedVariance(Tensor input, Tensor reconstruction)
    {
        reconstruction.EnsureShape("reconstruction", input.Shape.ToArray());
        int rows = input.Rows, cols = input.Cols;
        var mean = new double[cols];
        for (int r = 0; r < rows; r++) { var x = input.Row(r); for (int j = 0; j < cols; j++) mean[j] += x[j]; }
        for (int j = 0; j < cols; j++) mean[j] /= Math.Max(rows, 1);
        double err = 0, total = 0;
        for (int r = 0; r < rows; r++)
        {
            var x = input.Row(r); var y = reconstruction.Row(r);
            for (int j = 0; j < cols; j++)
            {
                double e = x[j] - y[j], t = x[j] - mean[j];
                err += e * e; total += t * t;
            }
        }
        return total == 0 ? (err == 0 ? 1 : double.NegativeInfinity) : 1 - err / total;
    }

    /// <summary>Mean over elements of (x − x̂)².</summary>
    public static double Mse(Tensor x, Tensor reconstruction)
    {
        reconstruction.EnsureShape("reconstruction", x.Shape.ToArray());
        double err = 0;
        var a = x.Span; var b = reconstruction.Span;
        for (int i = 0; i < a.Length; i++) { double e = a[i] - b[i]; err += e * e; }
        return err / Math.Max(1, a.Length);
    }
}
