using SaeSharp.Reports;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Reports.ReportFixtures;

namespace SaeSharp.Tests.Reports;

/// <summary>The match figures: valid PNG and SVG of their size, checkpoints as labelled categories, labelled axes, log colour bars.</summary>
public class MatchFiguresTests
{
    private static readonly string[] Checkpoints = ["0", "8", "128"];

    [Fact]
    public void HistogramsThroughTrainingAreAHeatmapOnALogColourScale()
    {
        using var dir = new TempDir();
        // Counts up to 120: the colour bar runs over 10⁰ .. 10^log10(120) with ticks at 10⁰, 10¹, 10².
        int[][] counts = [[0, 3, 120, 0], [1, 0, 0, 9], [0, 0, 50, 50]];
        var f = MatchFigures.HistogramHeatmap("activation_cosine_histograms", Checkpoints, counts, 0, 1, "Cosine <through> training", "Cosine similarity", "Reference latents");
        Assert.Equal("activation_cosine_histograms", f.Name);
        var (doc, texts) = SavedAndValid(f, dir.Root);
        foreach (var label in new[] { "Cosine <through> training", "Cosine similarity", "Checkpoint (training step)", "Reference latents (log scale)", "0", "8", "128", "10⁰", "10¹", "10²" })
            Assert.Contains(label, texts);
        Assert.NotEmpty(doc.Descendants(Svg + "image")); // the cells and the colour bar are images
        Assert.Throws<ArgumentException>(() => MatchFigures.HistogramHeatmap("x", Checkpoints, counts[..2], 0, 1, "t", "y", "c"));
    }

    [Fact]
    public void FractionMatchedHasALinePerThresholdWithItsLegend()
    {
        using var dir = new TempDir();
        double[] thresholds = [0.1, 0.5];
        var f = MatchFigures.FractionMatched(Checkpoints, thresholds, [[0, 0.1, 0.4], [0.2, 0.5, 0.9]]);
        var (doc, texts) = SavedAndValid(f, dir.Root);
        Assert.Contains("distance < 0.1", texts);
        Assert.Contains("distance < 0.5", texts);
        Assert.Contains("Fraction of the reference's latents matched", texts);
        Assert.Contains("128", texts);
        // Each line in its series colour: three markers (plus one in the legend).
        Assert.InRange(Points(doc, Figures.PointColor), 3, 4);
        Assert.InRange(Points(doc, "#4C72B0"), 3, 4);
        Assert.Equal((0, 1.02), (f.Plots[0].Axes.GetLimits().Bottom, f.Plots[0].Axes.GetLimits().Top));
    }

    [Fact]
    public void LinesSkipMissingValues()
    {
        using var dir = new TempDir();
        var f = MatchFigures.Lines("losses", Checkpoints, [("mse_loss", [1, double.NaN, 0.5]), ("aux_loss", [double.NaN, double.NaN, double.NaN])], "Losses", "Loss");
        var (doc, texts) = SavedAndValid(f, dir.Root);
        Assert.InRange(Points(doc), 2, 3); // two values of mse_loss
        Assert.Contains("mse_loss", texts);
        Assert.DoesNotContain("aux_loss", texts); // no value to draw
    }

    [Fact]
    public void DistanceHeatmapCountsRowsFromTheTop()
    {
        using var dir = new TempDir();
        var distances = new double[40, 3];
        for (int i = 0; i < 40; i++) for (int c = 0; c < 3; c++) distances[i, c] = i < 38 ? i / 40.0 : double.NaN;
        var f = MatchFigures.DistanceHeatmap("matched_distances", Checkpoints, distances, "Matched feature distances", "Reference latent (sorted)");
        var (_, texts) = SavedAndValid(f, dir.Root);
        Assert.Contains("Reference latent (sorted) (40)", texts);
        Assert.Contains("Distance 1 − cosine", texts);
        var limits = f.Plots[0].Axes.GetLimits();
        Assert.Equal((40.0, 0.0), (limits.Bottom, limits.Top)); // the axis counts rows down from the top
        Assert.True(IsViridisLow(ColorAt(f, 0, 0.5)), "row 0 (distance 0) should be at the top");
        Assert.False(IsViridisLow(ColorAt(f, 0, 36.5))); // row 36: distance 0.9
    }

    [Fact]
    public void HistogramHeatmapPutsTheLowestBinAtTheBottom()
    {
        // One checkpoint: 100 latents in the lowest bin, 1 in the highest: log10 colours 2 (yellow) and 0 (purple).
        var f = MatchFigures.HistogramHeatmap("h", ["0"], [[100, 0, 0, 1]], 0, 1, "t", "y", "c");
        Assert.False(IsViridisLow(ColorAt(f, 0, 0.1)));
        Assert.True(IsViridisLow(ColorAt(f, 0, 0.9)));
    }
}
