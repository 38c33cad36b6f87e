using SaeSharp.Reports;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using SaeSharp.Training;
using static SaeSharp.Tests.Reports.ReportFixtures;

namespace SaeSharp.Tests.Reports;

/// <summary>Every figure rendered from a small fixture: valid PNG and SVG of the figure's size, axis labels, the expected bars or points.</summary>
public class FiguresTests
{
    [Fact]
    public void FeatureDensityBinsActiveLatentsOnALogAxis()
    {
        using var dir = new TempDir();
        var (doc, texts) = SavedAndValid(Figures.FeatureDensity(Densities), dir.Root);
        // log10 bins of width 8/50 over [1e-8, 1]: 1e-6, 1e-3, 2e-3 and 0.5 fall in four different bins.
        Assert.Equal(4, Bars(doc));
        Assert.Contains("Feature density (fraction of tokens, log scale)", texts);
        Assert.Contains("Number of features", texts);
        Assert.Contains("Distribution of feature densities", texts);
        Assert.Contains("10⁻³", texts); // a tick label of the log axis
        Assert.Contains("Dead features: 2 (33.3%)", texts);
        Assert.Contains("Active features: 4 (66.7%)", texts);
    }

    [Fact]
    public void ActivationHistogramDrawsANonEmptyBinPerBar()
    {
        using var dir = new TempDir();
        var a = SmallAnalysis();
        var (doc, texts) = SavedAndValid(Figures.ActivationHistogram(a[3]), dir.Root);
        Assert.Equal(3, Bars(doc)); // counts [3, 0, 5, 1]
        Assert.Contains("Activation value", texts);
        Assert.Contains("Count (log scale)", texts);
        Assert.Contains("Activation histogram for feature 3", texts);
        Assert.Equal(3, Bars(SavedAndValid(Figures.ActivationHistogram(a[3], logY: false), dir.Root).Doc));
    }

    [Theory]
    [InlineData("density", new[] { 4, 3, 2 })]
    [InlineData("max_activation", new[] { 5, 4, 3 })]
    [InlineData("mean_activation", new[] { 4, 3, 2 })]
    public void TopFeaturesShowTheLargestStatistic(string by, int[] expected)
    {
        using var dir = new TempDir();
        var (doc, texts) = SavedAndValid(Figures.TopFeatures(SmallAnalysis().Rows, 3, by), dir.Root);
        Assert.Equal(3, Bars(doc));
        Assert.Equal(expected.Select(j => $"Feature {j}"), texts.Where(t => t.StartsWith("Feature ", StringComparison.Ordinal) && t.Length < 12));
        Assert.Contains("Feature", texts); // the y-axis label
        Assert.Throws<ArgumentException>(() => Figures.TopFeatures(SmallAnalysis().Rows, 3, "volume"));
    }

    [Fact]
    public void FeatureExamplesLabelEachBarWithItsContext()
    {
        using var dir = new TempDir();
        var (doc, texts) = SavedAndValid(Figures.FeatureExamples(SmallAnalysis()[4], k: 2), dir.Root);
        Assert.Equal(2, Bars(doc));
        Assert.Contains("1. Once upon« a» time↵ <b>", texts);
        Assert.Contains("Activation value", texts);
    }

    [Fact]
    public void DecoderWeightsAndDashboardHaveAPanelPerPart()
    {
        using var dir = new TempDir();
        var a = SmallAnalysis();
        var (doc, texts) = SavedAndValid(Figures.DecoderWeights([a[2], a[3], a[4]]), dir.Root);
        Assert.Equal(3 * 3, Bars(doc)); // three panels of [1, 2, 0, 4]
        Assert.Equal(3, texts.Count(t => t == "Weight value"));
        Assert.Contains("Feature 3", texts);

        var (dash, dashTexts) = SavedAndValid(Figures.FeatureDashboard(a[4]), dir.Root);
        // Activation histogram 3, top examples 3, decoder 3, logit effects 4.
        Assert.Equal(3 + 3 + 3 + 4, Bars(dash));
        foreach (var label in new[] { "Feature 4: activation distribution", "Top 10 activating examples", "Decoder weight distribution", "Logit effects over the vocabulary", "Direct effect on the logit" })
            Assert.Contains(label, dashTexts);
    }

    [Fact]
    public void TrainingCurvesPlotEveryLossTermAndTheOtherMetricsOnTheirOwnAxes()
    {
        using var dir = new TempDir();
        string path = dir.File("metrics.jsonl");
        File.WriteAllLines(path, Enumerable.Range(1, 5).Select(i =>
            $"{{\"step\":{i * 10},\"lr\":0.001,\"l0\":{40 - i},\"explained_variance\":{0.5 + 0.05 * i},\"dead_latents\":{10 - i},\"mse_loss\":{1.0 / i},\"l1_loss\":{0.1 * i},\"overall_loss\":{1.0 / i + 0.1 * i}}}"));
        var m = MetricsLog.Read(path);
        Assert.Equal(5, m.Lines);
        var f = Figures.TrainingCurves(m);
        var (doc, texts) = SavedAndValid(f, dir.Root);
        // One point per line per series: three loss terms, then L0, explained variance, dead latents and learning rate.
        int points = doc.Descendants(Svg + "ellipse").Count();
        Assert.InRange(points, 7 * 5, 7 * 5 + 3); // plus at most the markers of the loss panel's three legend entries
        Assert.True(Points(doc) >= 4 * 5); // the single-series panels use the point colour
        foreach (var label in new[] { "Loss (log scale)", "L0 (active latents per row)", "Explained variance", "Latents", "Learning rate", "Step", "mse_loss", "l1_loss", "overall_loss" })
            Assert.Contains(label, texts);
        Assert.Equal(5, f.Plots.Count);
        Assert.Throws<ArgumentException>(() => Figures.TrainingCurves(MetricsLog.Read(dir.File("none.jsonl"))));
    }

    [Fact]
    public void HeatmapHasItsLabelsAndAColourBar()
    {
        using var dir = new TempDir();
        var t = Tensor.FromArray([0, 1, 0.5f, 0.25f, 1, 0], 2, 3);
        var (doc, texts) = SavedAndValid(Figures.Heatmap(t, "cos", "cos <sim>", "true", "sae"), dir.Root);
        Assert.Contains("cos <sim>", texts);
        Assert.Contains("true (3)", texts);
        Assert.Contains("sae (2)", texts);
        Assert.NotEmpty(doc.Descendants(Svg + "image")); // the cells and the colour bar are images
    }

    [Fact]
    public void HeatmapDrawsRowZeroAtTheTop()
    {
        // Row 0 is 0 (viridis's purple), row 1 is 1 (yellow); the y axis counts rows down from 0 at the top.
        var f = Figures.Heatmap(Tensor.FromArray([0, 1], 2, 1), "rows", "rows", "col", "row");
        Assert.True(IsViridisLow(ColorAt(f, 0.5, 0.5)), "row 0 should be drawn at y 0..1, the top");
        Assert.False(IsViridisLow(ColorAt(f, 0.5, 1.5)));
        var limits = f.Plots[0].Axes.GetLimits();
        Assert.True(limits.Top < limits.Bottom, "the y axis runs downwards");
    }

    [Fact]
    public void SvgImagesAreNotSmoothed()
    {
        // Browsers smooth a heatmap's few-pixel bitmap when scaling it up; the SVG asks for pixelated scaling.
        string svg = Figures.Heatmap(Tensor.FromArray([0, 1, 0.5f, 0.25f], 2, 2), "h", "h", "x", "y").Svg();
        var (doc, _) = ParseSvg(svg, 560, 480);
        Assert.All(doc.Descendants(Svg + "image"), i => Assert.Contains("image-rendering:pixelated", (string?)i.Attribute("style")));
    }

    [Fact]
    public void PowersOfTenUseSuperscripts()
    {
        Assert.Equal("10⁻⁸", Figures.PowerOfTen(-8));
        Assert.Equal("10⁰", Figures.PowerOfTen(0));
        Assert.Equal("10¹²", Figures.PowerOfTen(12));
    }
}
