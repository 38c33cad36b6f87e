using System.Globalization;
using SaeSharp.IO;
using ScottPlot;

namespace SaeSharp.Reports;

/// <summary>
/// The figures of `saesharp match` (the "Match SAE Features Through Training" notebook's), drawn with ScottPlot and
/// written as <c>name.png</c> and <c>name.svg</c>: checkpoints on the x axis as evenly spaced categories labelled by
/// step, every axis labelled, heatmaps of counts on a log colour scale. They render what the match computed.
/// </summary>
public static class MatchFigures
{
    public const int Width = 900, Height = 540;

    /// <summary>
    /// Histograms through training as a heatmap: column c is checkpoint c's histogram <paramref name="counts"/>[c] of a
    /// quantity binned evenly over [<paramref name="lo"/>, <paramref name="hi"/>] (bin 0 at the bottom); colour is
    /// log10(1 + count), its bar labelled in counts.
    /// </summary>
    public static void HistogramHeatmap(string path, IReadOnlyList<string> checkpoints, IReadOnlyList<int[]> counts, double lo, double hi,
        string title, string yLabel, string countLabel)
    {
        if (counts.Count != checkpoints.Count || counts.Count == 0) throw new ArgumentException($"{counts.Count} histograms for {checkpoints.Count} checkpoints");
        int bins = counts[0].Length;
        var z = new double[bins, counts.Count];
        int max = 0;
        for (int c = 0; c < counts.Count; c++)
            for (int b = 0; b < bins; b++)
            {
                z[bins - 1 - b, c] = Math.Log10(1 + counts[c][b]); // row 0 is drawn at the top
                max = Math.Max(max, counts[c][b]);
            }
        var plot = new Plot();
        var map = plot.Add.Heatmap(z);
        map.Colormap = new ScottPlot.Colormaps.Viridis();
        map.Extent = new CoordinateRect(-0.5, counts.Count - 0.5, lo, hi);
        map.ManualRange = new ScottPlot.Range(0, Math.Log10(1 + Math.Max(1, max)));
        var bar = plot.Add.ColorBar(map);
        bar.Label = countLabel + " (log scale)";
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (long v = 1; v <= Math.Max(1, max) * 10L; v *= 10) if (v <= Math.Max(1, max) || v == 1) ticks.AddMajor(Math.Log10(1 + v), v.ToString("N0", CultureInfo.InvariantCulture));
        ticks.AddMajor(0, "0");
        bar.Axis.TickGenerator = ticks;
        CheckpointAxis(plot, checkpoints);
        plot.Axes.SetLimits(-0.5, counts.Count - 0.5, lo, hi);
        Finish(plot, path, title, yLabel);
    }

    /// <summary>One line per distance threshold: the fraction of reference latents matched at each checkpoint.</summary>
    public static void FractionMatched(string path, IReadOnlyList<string> checkpoints, IReadOnlyList<double> thresholds, IReadOnlyList<double[]> fractions)
    {
        var plot = new Plot();
        var xs = Enumerable.Range(0, checkpoints.Count).Select(i => (double)i).ToArray();
        for (int t = 0; t < thresholds.Count; t++)
        {
            var line = plot.Add.Scatter(xs, fractions[t]);
            line.LegendText = $"distance < {thresholds[t].ToString(CultureInfo.InvariantCulture)}";
            line.LineWidth = 2;
            line.MarkerSize = 6;
        }
        plot.ShowLegend(Edge.Right);
        CheckpointAxis(plot, checkpoints);
        plot.Axes.SetLimits(-0.3, checkpoints.Count - 0.7, 0, 1.02);
        Finish(plot, path, "Fraction of matched features", "fraction of the reference's latents matched");
    }

    /// <summary>Named series of one value per checkpoint (NaN: no value), e.g. each SAE's training losses.</summary>
    public static void Lines(string path, IReadOnlyList<string> checkpoints, IReadOnlyList<(string Label, double[] Values)> series, string title, string yLabel)
    {
        var plot = new Plot();
        foreach (var (label, values) in series)
        {
            var keep = Enumerable.Range(0, values.Length).Where(i => double.IsFinite(values[i])).ToArray();
            if (keep.Length == 0) continue;
            var line = plot.Add.Scatter(keep.Select(i => (double)i).ToArray(), keep.Select(i => values[i]).ToArray());
            line.LegendText = label;
            line.LineWidth = 2;
            line.MarkerSize = 6;
        }
        plot.ShowLegend(Edge.Right);
        CheckpointAxis(plot, checkpoints);
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsX(-0.3, checkpoints.Count - 0.7);
        Finish(plot, path, title, yLabel);
    }

    /// <summary>
    /// A matrix [rows, checkpoints] of distances in [0, 1] (NaN drawn grey), row 0 at the top and the y axis counting rows
    /// from there: the matched distance of every reference latent at every checkpoint, rows in the order given.
    /// </summary>
    public static void DistanceHeatmap(string path, IReadOnlyList<string> checkpoints, double[,] distances, string title, string yLabel)
    {
        int rows = distances.GetLength(0);
        var plot = new Plot();
        // Intensity row 0 is drawn at the top of the extent; the y axis counts rows from the top down.
        var map = plot.Add.Heatmap(distances);
        map.Colormap = new ScottPlot.Colormaps.Viridis();
        map.ManualRange = new ScottPlot.Range(0, 1);
        map.NaNCellColor = Colors.LightGray;
        map.Extent = new CoordinateRect(-0.5, checkpoints.Count - 0.5, 0, rows);
        var bar = plot.Add.ColorBar(map);
        bar.Label = "distance 1 − cosine";
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        double step = NiceStep(rows / 8.0);
        for (double k = 0; k <= rows; k += step) ticks.AddMajor(rows - k, k.ToString("N0", CultureInfo.InvariantCulture));
        plot.Axes.Left.TickGenerator = ticks;
        CheckpointAxis(plot, checkpoints);
        plot.Axes.SetLimits(-0.5, checkpoints.Count - 0.5, 0, rows);
        Finish(plot, path, title, yLabel);
    }

    /// <summary>1, 2 or 5 times a power of ten, at least <paramref name="rough"/>.</summary>
    private static double NiceStep(double rough)
    {
        double p = Math.Pow(10, Math.Floor(Math.Log10(Math.Max(1, rough))));
        return new[] { 1, 2, 5, 10 }.Select(m => m * p).First(v => v >= rough);
    }

    private static void CheckpointAxis(Plot plot, IReadOnlyList<string> checkpoints)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (int c = 0; c < checkpoints.Count; c++) ticks.AddMajor(c, checkpoints[c]);
        plot.Axes.Bottom.TickGenerator = ticks;
    }

    private static void Finish(Plot plot, string path, string title, string yLabel)
    {
        plot.Title(title);
        plot.XLabel("checkpoint (training step)");
        plot.YLabel(yLabel);
        AtomicFile.WriteAllBytes(path + ".png", plot.GetImageBytes(Width, Height, ImageFormat.Png));
        AtomicFile.WriteAllText(path + ".svg", plot.GetSvgXml(Width, Height));
    }
}
