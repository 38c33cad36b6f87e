using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>Statistics of a sample of activations used to initialise b_dec and the normalisation scale.</summary>
public static class Initialization
{
    /// <summary>The mean of the rows of x.</summary>
    public static float[] Mean(Tensor x, Compute compute)
    {
        var m = new float[x.Cols];
        Ops.SumRows(x, m, compute);
        for (int j = 0; j < m.Length; j++) m[j] /= Math.Max(1, x.Rows);
        return m;
    }

    /// <summary>The coordinate-wise median of the rows of x (drrik's b_dec initialisation).</summary>
    public static float[] CoordinateMedian(Tensor x)
    {
        var med = new float[x.Cols];
        var col = new float[x.Rows];
        for (int j = 0; j < x.Cols; j++)
        {
            for (int r = 0; r < x.Rows; r++) col[r] = x[r, j];
            Array.Sort(col);
            int n = col.Length;
            med[j] = n == 0 ? 0 : n % 2 == 1 ? col[n / 2] : 0.5f * (col[n / 2 - 1] + col[n / 2]);
        }
        return med;
    }

    /// <summary>
    /// The geometric median of the rows of x by Weiszfeld iterations (SAELens's b_dec "geometric_median"), started
    /// at the mean; stops when the relative change of the objective falls below <paramref name="tolerance"/>.
    /// </summary>
    public static float[] GeometricMedian(Tensor x, Compute compute, int maxIterations = 100, double tolerance = 1e-5)
    {
        int n = x.Rows, d = x.Cols;
        var y = Mean(x, compute: compute).Select(v => (double)v).ToArray();
        double previous = double.MaxValue;
        var next = new double[d];
        for (int it = 0; it < maxIterations; it++)
        {
            Array.Clear(next);
            double wsum = 0, objective = 0;
            for (int r = 0; r < n; r++)
            {
                var row = x.Row(r);
                double dist = 0;
                for (int j = 0; j < d; j++) { double t = row[j] - y[j]; dist += t * t; }
                dist = Math.Sqrt(dist);
                objective += dist;
                double w = 1 / Math.Max(dist, 1e-12);
                wsum += w;
                for (int j = 0; j < d; j++) next[j] += w * row[j];
            }
            for (int j = 0; j < d; j++) y[j] = next[j] / wsum;
            if (Math.Abs(previous - objective) <= tolerance * Math.Max(objective, 1e-30)) break;
            previous = objective;
        }
        return y.Select(v => (float)v).ToArray();
    }

    /// <summary>
    /// SAELens expected_average_only_in: the factor √d_in / E‖x‖ that scales inputs to an average norm of √d_in.
    /// </summary>
    public static double NormScalingFactor(IEnumerable<Tensor> batches)
    {
        double sum = 0;
        long count = 0;
        int d = 0;
        foreach (var b in batches)
        {
            d = b.Cols;
            foreach (var norm in Ops.RowNorms(b)) { sum += norm; count++; }
        }
        if (count == 0) throw new ArgumentException("no activations to estimate the normalisation factor from");
        double mean = sum / count;
        if (!(mean > 0) || !double.IsFinite(mean)) throw new InvalidDataException($"mean activation norm is {mean}; cannot normalise");
        return Math.Sqrt(d) / mean;
    }
}
