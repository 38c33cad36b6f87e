using SaeSharp.Analysis;
using SaeSharp.Training;

namespace SaeSharp.Reports;

/// <summary>
/// drrik's FeatureVisualizer over a feature store (or an analysis in memory): each method draws one figure from what
/// the analysis holds, saves it as PNG and SVG in <see cref="OutputDir"/> under drrik's file name, and returns it.
/// Training curves come from a run's metrics.jsonl when one is given.
/// </summary>
public sealed class FeatureVisualizer(IFeatureSource source, string outputDir, string? metricsPath = null)
{
    public string OutputDir { get; } = outputDir;
    public IFeatureSource Source => source;

    private Figure Saved(Figure f)
    {
        Directory.CreateDirectory(OutputDir);
        f.Save(OutputDir);
        return f;
    }

    public Figure PlotFeatureDensity(int bins = 50) => Saved(Figures.FeatureDensity(source.Rows.Select(r => r.Density).ToArray(), bins));

    public Figure PlotActivationHistogram(int feature, bool logY = true) => Saved(Figures.ActivationHistogram(source.Detail(feature), logY));

    /// <summary>The training curves of the metrics log; null when there is none (drrik warns and returns None).</summary>
    public Figure? PlotTrainingCurves()
    {
        if (metricsPath is null || !File.Exists(metricsPath)) return null;
        var m = MetricsLog.Read(metricsPath);
        return m.Lines == 0 || !m.Has("step") ? null : Saved(Figures.TrainingCurves(m));
    }

    /// <param name="by">density, max_activation or mean_activation.</param>
    public Figure PlotTopFeatures(int n = 10, string by = "density") => Saved(Figures.TopFeatures(source.Rows, n, by));

    public Figure PlotFeatureExamples(int feature, int k = 10) => Saved(Figures.FeatureExamples(source.Detail(feature), k));

    /// <summary>Decoder weight distributions of <paramref name="features"/>, or of the <paramref name="n"/> densest latents.</summary>
    public Figure PlotDecoderWeights(IReadOnlyList<int>? features = null, int n = 10) =>
        Saved(Figures.DecoderWeights((features ?? TopBy("density", n)).Select(source.Detail).ToArray()));

    public Figure CreateFeatureDashboard(int feature) => Saved(Figures.FeatureDashboard(source.Detail(feature)));

    /// <summary>The <paramref name="n"/> latents with the largest statistic (density, max_activation or mean_activation), ties to the lower index.</summary>
    public IReadOnlyList<int> TopBy(string by, int n) =>
        source.Rows.OrderByDescending(r => Figures.Statistic(r, by)).ThenBy(r => r.Feature).Take(n).Select(r => r.Feature).ToArray();

    /// <summary>
    /// drrik's save_all: the density plot, the training curves (when there is a metrics log), the top features by
    /// density, max and mean activation, the decoder weights and a dashboard, an activation histogram and an examples
    /// figure for each of the <paramref name="n"/> densest latents.
    /// </summary>
    public IReadOnlyList<Figure> SaveAll(int n = 10)
    {
        var figures = new List<Figure> { PlotFeatureDensity() };
        if (PlotTrainingCurves() is { } curves) figures.Add(curves);
        foreach (var by in new[] { "density", "max_activation", "mean_activation" }) figures.Add(PlotTopFeatures(n, by));
        var top = TopBy("density", n);
        figures.Add(PlotDecoderWeights(top));
        foreach (int j in top)
        {
            figures.Add(CreateFeatureDashboard(j));
            figures.Add(PlotActivationHistogram(j));
            figures.Add(PlotFeatureExamples(j));
        }
        return figures;
    }
}
