using System.Globalization;
using ScottPlot;
using SaeSharp.Analysis;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Reports;

/// <summary>
/// The figures of drrik's FeatureVisualizer and SaeSharp's reports, drawn with ScottPlot from results (an analysis,
/// a metrics log, a matrix): every axis has ticks and a label, log scales are drawn as log10 values with 10ⁿ tick labels
/// and minor ticks. Bars are filled with <see cref="BarColor"/> and points with <see cref="PointColor"/>, so a figure's
/// SVG can be checked by counting them.
/// </summary>
public static class Figures
{
    public const string BarColor = "#4C72B0";
    public const string PointColor = "#C44E52";
    private static readonly string[] SeriesColors = ["#C44E52", "#4C72B0", "#55A868", "#8172B2", "#CCB974", "#64B5CD", "#DD8452", "#937860"];
    private const string Font = "DejaVu Sans";

    /// <summary>A plot in the reports' font with its title and both axis labels.</summary>
    internal static Plot NewPlot(string title, string xLabel, string yLabel)
    {
        var p = new Plot();
        p.Font.Set(Font);
        p.Title(title, 15);
        p.XLabel(xLabel, 13);
        p.YLabel(yLabel, 13);
        return p;
    }

    private static string Fmt(double v, string f) => v.ToString(f, CultureInfo.InvariantCulture);

    /// <summary>10ⁿ with a superscript exponent.</summary>
    public static string PowerOfTen(double exponent)
    {
        const string digits = "⁰¹²³⁴⁵⁶⁷⁸⁹";
        var e = ((int)Math.Round(exponent)).ToString(CultureInfo.InvariantCulture);
        return "10" + string.Concat(e.Select(c => c == '-' ? '⁻' : digits[c - '0']));
    }

    /// <summary>An axis whose data are log10 values: integer major ticks labelled 10ⁿ, log-spaced minor ticks.</summary>
    private static void LogAxis(IAxis axis) => axis.TickGenerator = LogTicks();

    internal static ScottPlot.TickGenerators.NumericAutomatic LogTicks() => new()
    {
        IntegerTicksOnly = true,
        LabelFormatter = PowerOfTen,
        MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
    };

    /// <summary>The colour of series <paramref name="k"/> of a plot with several (the first is <see cref="PointColor"/>).</summary>
    internal static Color SeriesColor(int k) => Color.FromHex(SeriesColors[k % SeriesColors.Length]);

    /// <summary>Major ticks at 0, 1, 2, ... labelled with <paramref name="labels"/> (categories, e.g. checkpoints).</summary>
    internal static void CategoryAxis(IAxis axis, IReadOnlyList<string> labels) =>
        axis.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, labels.Count).Select(i => (double)i).ToArray(), labels.ToArray());

    /// <summary>
    /// Cells [row, col] filling <paramref name="extent"/>, row 0 along its lowest y (on an axis that runs downwards, as
    /// a matrix is read, give the extent as Bottom = rows, Top = 0: row 0 is then the top row) and column 0 at its
    /// Left, in viridis over
    /// [<paramref name="min"/>, <paramref name="max"/>], NaN cells in <paramref name="nanColor"/>, with a colour bar
    /// labelled <paramref name="barLabel"/>; with <paramref name="logColor"/> the cells are log10 values and the bar's
    /// ticks read 10ⁿ.
    /// </summary>
    internal static void AddHeatmap(Plot p, double[,] cells, CoordinateRect extent, double min, double max, string? barLabel = null, bool logColor = false, Color? nanColor = null)
    {
        // ScottPlot draws nothing for a single row or column; each cell split in two looks the same.
        int rows = cells.GetLength(0), cols = cells.GetLength(1), rf = rows == 1 ? 2 : 1, cf = cols == 1 ? 2 : 1;
        if (rf * cf > 1)
        {
            var wide = new double[rows * rf, cols * cf];
            for (int r = 0; r < wide.GetLength(0); r++) for (int c = 0; c < wide.GetLength(1); c++) wide[r, c] = cells[r / rf, c / cf];
            cells = wide;
        }
        var hm = p.Add.Heatmap(cells);
        hm.Colormap = new ScottPlot.Colormaps.Viridis();
        hm.ManualRange = new ScottPlot.Range(min, max);
        hm.Rectangle = extent;
        hm.NaNCellColor = nanColor ?? Colors.LightGray;
        hm.FlipRows = true; // ScottPlot's default puts row 0 at the highest y
        var bar = p.Add.ColorBar(hm);
        if (barLabel is not null) bar.Label = barLabel;
        if (logColor) bar.Axis.TickGenerator = LogTicks();
    }

    private static Bar NewBar(double position, double value, double size, double valueBase = 0) =>
        new() { Position = position, Value = value, ValueBase = valueBase, Size = size, FillColor = Color.FromHex(BarColor), LineColor = Colors.Black, LineWidth = 0.5f };

    /// <summary>
    /// Bars of a histogram, one per non-empty bin; with <paramref name="logY"/> a bar spans log10(0.5) to log10(count)
    /// (so a bar of one stands out against zero).
    /// </summary>
    private static void HistogramBars(Plot p, Histogram h, bool logY)
    {
        var bars = new List<Bar>();
        double width = h.Max > h.Min ? h.Width : 1;
        for (int i = 0; i < h.Bins; i++)
        {
            long c = h.Counts[i];
            double center = h.Max > h.Min ? h.Edge(i) + width / 2 : h.Min + (i + 0.5 - h.Bins / 2.0) * width;
            if (c == 0) continue;
            bars.Add(logY ? NewBar(center, Math.Log10(c), width, Math.Log10(0.5)) : NewBar(center, c, width));
        }
        if (bars.Count > 0) p.Add.Bars(bars);
        p.Axes.Left.TickGenerator = logY ? LogTicks() : new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true }; // counts
        if (!logY) p.Axes.Margins(bottom: 0); // counts start at zero: no axis below it
    }

    /// <summary>Panels in a grid of <paramref name="rows"/> × <paramref name="cols"/> (a new Multiplot already holds one plot: it becomes the first).</summary>
    private static Multiplot Panels(IReadOnlyList<Plot> plots, int rows, int cols)
    {
        var m = new Multiplot(plots[0]);
        foreach (var p in plots.Skip(1)) m.Subplots.Add(p);
        if (m.Subplots.Count != plots.Count) throw new InvalidOperationException($"multiplot holds {m.Subplots.Count} panels, expected {plots.Count}");
        m.Layout = new ScottPlot.MultiplotLayouts.Grid(rows, cols);
        return m;
    }

    private static void Note(Plot p, string text) => p.Add.Annotation(text, Alignment.UpperRight);

    /// <summary>
    /// drrik's plot_feature_density: how many latents have each firing density, in <paramref name="bins"/> log-spaced
    /// bins over [1e-8, 1]; dead latents (density 0) are counted in the note, not drawn.
    /// </summary>
    public static Figure FeatureDensity(IReadOnlyList<double> densities, int bins = 50)
    {
        var p = NewPlot("Distribution of feature densities", "Feature density (fraction of tokens, log scale)", "Number of features");
        var active = densities.Where(d => d > 0).ToArray();
        var counts = new long[bins];
        foreach (double d in active) counts[Math.Clamp((int)Math.Floor((Math.Log10(d) + 8) / 8 * bins), 0, bins - 1)]++;
        double width = 8.0 / bins;
        var bars = new List<Bar>();
        for (int i = 0; i < bins; i++) if (counts[i] > 0) bars.Add(NewBar(-8 + width * (i + 0.5), counts[i], width));
        if (bars.Count > 0) p.Add.Bars(bars);
        p.Axes.Margins(bottom: 0); // counts start at zero: no axis below it
        p.Axes.SetLimitsX(-8.2, 0.2);
        LogAxis(p.Axes.Bottom);
        int dead = densities.Count - active.Length;
        double median = active.Length == 0 ? double.NaN : active.Order().ElementAt(active.Length / 2);
        p.Add.Annotation($"Dead features: {dead} ({100.0 * dead / Math.Max(1, densities.Count):F1}%)\nActive features: {active.Length} ({100.0 * active.Length / Math.Max(1, densities.Count):F1}%)\nMedian density: {Fmt(median, "0.00e+0")}", Alignment.UpperLeft);
        return new Figure("feature_density", p, 800, 480);
    }

    /// <summary>drrik's plot_activation_histogram: a latent's firing activations (SAEDashboard's activation density panel).</summary>
    public static Figure ActivationHistogram(FeatureDetail d, bool logY = true)
    {
        var p = NewPlot($"Activation histogram for feature {d.Feature}", "Activation value", logY ? "Count (log scale)" : "Count");
        HistogramBars(p, d.ActivationHistogram, logY);
        Note(p, $"Density: {Fmt(d.Stats.Density, "0.00e+0")}\nMax activation: {Fmt(d.Stats.MaxActivation, "F4")}\nMean (active): {Fmt(d.Stats.MeanActiveActivation, "F4")}");
        return new Figure($"activation_histogram_feature_{d.Feature}", p, 800, 480);
    }

    /// <summary>The statistic <see cref="TopFeatures"/> sorts by: density, max_activation or mean_activation.</summary>
    public static double Statistic(FeatureSummaryRow r, string by) => by switch
    {
        "density" => r.Density,
        "max_activation" => r.MaxActivation,
        "mean_activation" => r.MeanActivation,
        _ => throw new ArgumentException($"by: expected density, max_activation or mean_activation, got '{by}'"),
    };

    /// <summary>drrik's plot_top_features: the <paramref name="n"/> latents with the largest statistic, as horizontal bars.</summary>
    public static Figure TopFeatures(IReadOnlyList<FeatureSummaryRow> rows, int n = 10, string by = "density")
    {
        var top = rows.OrderByDescending(r => Statistic(r, by)).ThenBy(r => r.Feature).Take(n).ToList();
        string label = by switch { "density" => "Feature density", "max_activation" => "Max activation", _ => "Mean activation" };
        var p = NewPlot($"Top {top.Count} features by {label.ToLowerInvariant()}", label, "Feature");
        var bars = top.Select((r, i) => NewBar(top.Count - 1 - i, Statistic(r, by), 0.8)).ToList();
        var plot = p.Add.Bars(bars);
        plot.Horizontal = true;
        p.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            top.Select((_, i) => (double)(top.Count - 1 - i)).ToArray(), top.Select(r => $"Feature {r.Feature}").ToArray());
        return new Figure($"top_features_{by}", p, 800, Math.Max(320, 60 + 34 * top.Count));
    }

    /// <summary>
    /// An example's context as one line of at most <paramref name="maxChars"/> characters centred on its own token
    /// (marked «»); a document's text when the example is one.
    /// </summary>
    public static string ContextText(FeatureExample e, int maxChars = 90)
    {
        if (e.Text is { } text) return Clip(text.ReplaceLineEndings(" "), maxChars);
        string Join(IEnumerable<string> t) => string.Concat(t).ReplaceLineEndings("↵");
        string center = $"«{Join([e.Tokens[e.Center]])}»";
        string left = Join(e.Tokens.Take(e.Center)), right = Join(e.Tokens.Skip(e.Center + 1));
        int room = Math.Max(0, maxChars - center.Length);
        int leftRoom = Math.Min(left.Length, Math.Max(room / 2, room - right.Length));
        int rightRoom = Math.Min(right.Length, room - leftRoom);
        string l = leftRoom < left.Length ? "…" + left[(left.Length - leftRoom + 1)..] : left;
        string r = rightRoom < right.Length ? right[..Math.Max(0, rightRoom - 1)] + "…" : right;
        return l + center + r;
    }

    private static string Clip(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";

    /// <summary>drrik's plot_feature_examples: the top <paramref name="k"/> activations of a latent, labelled with their context.</summary>
    public static Figure FeatureExamples(FeatureDetail d, int k = 10)
    {
        var ex = d.TopExamples.Take(k).ToList();
        var p = NewPlot($"Top {ex.Count} activating examples for feature {d.Feature}", "Activation value", "Example");
        if (ex.Count > 0)
        {
            var plot = p.Add.Bars(ex.Select((e, i) => NewBar(ex.Count - 1 - i, e.Activation, 0.8)).ToList());
            plot.Horizontal = true;
            p.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
                ex.Select((_, i) => (double)(ex.Count - 1 - i)).ToArray(), ex.Select((e, i) => $"{i + 1}. {ContextText(e, 60)}").ToArray());
        }
        return new Figure($"feature_{d.Feature}_examples", p, 1100, Math.Max(320, 60 + 34 * ex.Count));
    }

    /// <summary>drrik's plot_decoder_weights: the distribution of each latent's decoder row, one panel per latent.</summary>
    public static Figure DecoderWeights(IReadOnlyList<FeatureDetail> features)
    {
        if (features.Count == 0) throw new ArgumentException("no features to plot");
        int cols = Math.Min(5, features.Count), rows = (features.Count + cols - 1) / cols;
        var plots = features.Select(d =>
        {
            var p = NewPlot($"Feature {d.Feature}", "Weight value", "Count");
            HistogramBars(p, d.DecoderHistogram, logY: false);
            return p;
        }).ToArray();
        return new Figure("decoder_weights", Panels(plots, rows, cols), 300 * cols, 280 * rows);
    }

    /// <summary>
    /// drrik's create_feature_dashboard with SAEDashboard's logit panel: the activation histogram (log counts), the top
    /// ten activations, the decoder weight distribution and the logit-effect histogram.
    /// </summary>
    /// <param name="label">What the first panel's title calls the latent (default "Feature {index}").</param>
    /// <param name="name">The file name stem (default feature_{index}_dashboard).</param>
    /// <param name="column">Stack the four panels in one column (dashboards placed side by side).</param>
    public static Figure FeatureDashboard(FeatureDetail d, string? label = null, string? name = null, bool column = false)
    {
        var hist = NewPlot($"{label ?? $"Feature {d.Feature}"}: activation distribution", "Activation value", "Count (log scale)");
        HistogramBars(hist, d.ActivationHistogram, logY: true);
        Note(hist, $"Density: {Fmt(d.Stats.Density, "0.00e+0")}\nMax activation: {Fmt(d.Stats.MaxActivation, "F4")}\nDecoder norm: {Fmt(d.Stats.DecoderNorm, "F4")}");

        var ex = d.TopExamples.Take(10).ToList();
        var top = NewPlot("Top 10 activating examples", "Activation value", "Example");
        if (ex.Count > 0)
        {
            var bars = top.Add.Bars(ex.Select((e, i) => NewBar(ex.Count - 1 - i, e.Activation, 0.8)).ToList());
            bars.Horizontal = true;
            top.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
                ex.Select((_, i) => (double)(ex.Count - 1 - i)).ToArray(), ex.Select(e => ContextText(e, 28)).ToArray());
        }

        var dec = NewPlot("Decoder weight distribution", "Weight value", "Count");
        HistogramBars(dec, d.DecoderHistogram, logY: false);

        var logits = NewPlot("Logit effects over the vocabulary", "Direct effect on the logit", "Tokens");
        if (d.LogitHistogram is { } lh) HistogramBars(logits, lh, logY: false);
        else Note(logits, "no logit tables for this SAE's hook");
        name ??= $"feature_{d.Feature}_dashboard";
        return column ? new Figure(name, Panels([hist, top, dec, logits], 4, 1), 560, 1480) : new Figure(name, Panels([hist, top, dec, logits], 2, 2), 1400, 860);
    }

    /// <summary>
    /// drrik's plot_training_curves over a metrics.jsonl: every loss term (log scale), L0, explained variance, dead latents
    /// and the learning rate, each on its own axis against the step. Missing values are skipped.
    /// </summary>
    public static Figure TrainingCurves(MetricsTable m, string name = "training_curves")
    {
        if (!m.Has("step") || m.Lines == 0) throw new ArgumentException("the metrics log has no lines with a step");
        var step = m["step"];
        var losses = m.Columns.Where(c => c.EndsWith("loss", StringComparison.Ordinal)).ToList();
        var plots = new List<Plot>();
        void Panel(string title, string yLabel, IReadOnlyList<string> keys, bool logY)
        {
            var p = NewPlot(title, "Step", yLabel);
            var present = keys.Where(m.Has).ToList();
            double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
            int k = 0;
            foreach (var key in present)
            {
                var ys = m[key];
                var idx = Enumerable.Range(0, ys.Length).Where(i => double.IsFinite(ys[i]) && double.IsFinite(step[i]) && (!logY || ys[i] > 0)).ToArray();
                if (idx.Length == 0) continue;
                var y = idx.Select(i => logY ? Math.Log10(ys[i]) : ys[i]).ToArray();
                lo = Math.Min(lo, y.Min()); hi = Math.Max(hi, y.Max());
                var s = p.Add.Scatter(idx.Select(i => step[i]).ToArray(), y);
                s.Color = present.Count == 1 ? Color.FromHex(PointColor) : SeriesColor(k++);
                s.MarkerSize = 3;
                if (present.Count > 1) s.LegendText = key;
            }
            if (present.Count > 1) p.ShowLegend(Alignment.UpperRight);
            else p.HideLegend();
            // A constant series (a fixed learning rate) gets a range around its value rather than ScottPlot's ±1.
            if (hi - lo <= 1e-12 * Math.Max(1, Math.Abs(hi)))
            {
                double pad = hi == 0 ? 1 : Math.Abs(hi) * 0.5;
                p.Axes.SetLimitsY(hi - pad, hi + pad);
            }
            if (logY) LogAxis(p.Axes.Left);
            plots.Add(p);
        }
        Panel("Loss terms", "Loss (log scale)", losses, logY: true);
        Panel("Sparsity", "L0 (active latents per row)", ["l0", "val_l0"], logY: false);
        Panel("Reconstruction", "Explained variance", ["explained_variance"], logY: false);
        Panel("Dead latents", "Latents", ["dead_latents"], logY: false);
        Panel("Learning rate", "Learning rate", ["lr"], logY: false);
        return new Figure(name, Panels(plots, plots.Count, 1), 900, plots.Count * 230);
    }

    /// <summary>
    /// A matrix as a heatmap (rows down, columns across), averaged into at most <paramref name="maxCells"/>² cells, with
    /// a colour bar over [<paramref name="min"/>, <paramref name="max"/>].
    /// </summary>
    public static Figure Heatmap(Tensor values, string name, string title, string xLabel, string yLabel, double min = 0, double max = 1, int maxCells = 128)
    {
        int rows = values.Rows, cols = values.Cols;
        int gr = Math.Min(rows, maxCells), gc = Math.Min(cols, maxCells);
        var grid = new double[gr, gc];
        var count = new int[gr, gc];
        for (int r = 0; r < rows; r++)
        {
            int i = (int)((long)r * gr / rows);
            var row = values.Row(r);
            for (int c = 0; c < cols; c++)
            {
                int j = (int)((long)c * gc / cols);
                grid[i, j] += row[c];
                count[i, j]++;
            }
        }
        for (int i = 0; i < gr; i++) for (int j = 0; j < gc; j++) grid[i, j] = count[i, j] == 0 ? min : grid[i, j] / count[i, j];
        var p = NewPlot(title, $"{xLabel} ({cols})", $"{yLabel} ({rows})");
        AddHeatmap(p, grid, new CoordinateRect(0, cols, rows, 0), min, max);
        p.Axes.SetLimits(0, cols, rows, 0);
        return new Figure(name, p, 560, 480);
    }
}
