using System.Globalization;
using ScottPlot;

namespace SaeSharp.Reports;

/// <summary>
/// The figures of `saesharp match` (the "Match SAE Features Through Training" notebook's) as <see cref="Figure"/>s drawn
/// with the conventions of <see cref="Figures"/>: checkpoints on the x axis as evenly spaced categories labelled by step,
/// every axis labelled, counts on a log colour scale with 10ⁿ ticks. They render what the match computed.
/// </summary>
public static class MatchFigures
{
    public const int Width = 900, Height = 540;
    private const string CheckpointLabel = "Checkpoint (training step)";

    /// <summary>
    /// Histograms through training as a heatmap: column c is checkpoint c's histogram <paramref name="counts"/>[c] of a
    /// quantity binned evenly over [<paramref name="lo"/>, <paramref name="hi"/>] (bin 0 at the bottom); colour is the
    /// count on a log scale, empty bins left blank.
    /// </summary>
    public static Figure HistogramHeatmap(string name, IReadOnlyList<string> checkpoints, IReadOnlyList<int[]> counts, double lo, double hi,
        string title, string yLabel, string countLabel)
    {
        if (counts.Count != checkpoints.Count || counts.Count == 0) throw new ArgumentException($"{counts.Count} histograms for {checkpoints.Count} checkpoints");
        int bins = counts[0].Length;
        var z = new double[bins, counts.Count];
        int max = 1;
        for (int c = 0; c < counts.Count; c++)
            for (int b = 0; b < bins; b++)
            {
                z[b, c] = counts[c][b] > 0 ? Math.Log10(counts[c][b]) : double.NaN;
                max = Math.Max(max, counts[c][b]);
            }
        var p = Figures.NewPlot(title, CheckpointLabel, yLabel);
        Figures.AddHeatmap(p, z, new CoordinateRect(-0.5, counts.Count - 0.5, lo, hi), 0, Math.Max(1, Math.Log10(max)), countLabel + " (log scale)",
            logColor: true, nanColor: Colors.White);
        Figures.CategoryAxis(p.Axes.Bottom, checkpoints);
        p.Axes.SetLimits(-0.5, counts.Count - 0.5, lo, hi);
        return new Figure(name, p, Width, Height);
    }

    /// <summary>One line per distance threshold: the fraction of reference latents matched at each checkpoint.</summary>
    public static Figure FractionMatched(IReadOnlyList<string> checkpoints, IReadOnlyList<double> thresholds, IReadOnlyList<double[]> fractions)
    {
        var series = thresholds.Select((t, i) => ($"distance < {t.ToString(CultureInfo.InvariantCulture)}", fractions[i])).ToList();
        var f = Lines("fraction_matched", checkpoints, series, "Fraction of matched features", "Fraction of the reference's latents matched");
        f.Plots[0].Axes.SetLimitsY(0, 1.02);
        return f;
    }

    /// <summary>Named series of one value per checkpoint (NaN: no value), e.g. each SAE's training losses.</summary>
    public static Figure Lines(string name, IReadOnlyList<string> checkpoints, IReadOnlyList<(string Label, double[] Values)> series, string title, string yLabel)
    {
        var p = Figures.NewPlot(title, CheckpointLabel, yLabel);
        int k = 0;
        foreach (var (label, values) in series)
        {
            var keep = Enumerable.Range(0, values.Length).Where(i => double.IsFinite(values[i])).ToArray();
            var color = Figures.SeriesColor(k++);
            if (keep.Length == 0) continue;
            var line = p.Add.Scatter(keep.Select(i => (double)i).ToArray(), keep.Select(i => values[i]).ToArray());
            line.LegendText = label;
            line.Color = color;
            line.LineWidth = 2;
            line.MarkerSize = 6;
        }
        p.ShowLegend(Edge.Right);
        Figures.CategoryAxis(p.Axes.Bottom, checkpoints);
        p.Axes.AutoScale();
        p.Axes.SetLimitsX(-0.3, checkpoints.Count - 0.7);
        return new Figure(name, p, Width, Height);
    }

    /// <summary>
    /// A matrix [rows, checkpoints] of distances in [0, 1] (NaN drawn grey), row 0 at the top and the y axis counting rows
    /// from there: the matched distance of every reference latent at every checkpoint, rows in the order given.
    /// </summary>
    public static Figure DistanceHeatmap(string name, IReadOnlyList<string> checkpoints, double[,] distances, string title, string yLabel)
    {
        int rows = distances.GetLength(0);
        var p = Figures.NewPlot(title, CheckpointLabel, $"{yLabel} ({rows})");
        Figures.AddHeatmap(p, distances, new CoordinateRect(-0.5, checkpoints.Count - 0.5, rows, 0), 0, 1, "Distance 1 − cosine");
        Figures.CategoryAxis(p.Axes.Bottom, checkpoints);
        p.Axes.SetLimits(-0.5, checkpoints.Count - 0.5, rows, 0);
        return new Figure(name, p, Width, Height);
    }
}
