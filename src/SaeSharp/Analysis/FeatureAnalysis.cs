using System.Text.Json.Nodes;

namespace SaeSharp.Analysis;

/// <summary>
/// What an analysis collects per latent, and how much of it (SAEDashboard's defaults where it has one). Its snake_case
/// property names are settings of `saesharp analyze` (a settings group of its record).
/// </summary>
public sealed record FeatureAnalysisOptions
{
    /// <summary>Top activating positions kept per latent.</summary>
    public int TopExamples { get; set; } = 20;
    /// <summary>Tokens of context on each side of an example's position (within its context window).</summary>
    public int ContextTokens { get; set; } = 10;
    /// <summary>Equal-width activation intervals over (0, max] sampled for the quantile groups (SAEDashboard n_quantiles).</summary>
    public int QuantileGroups { get; set; } = 10;
    /// <summary>Examples drawn uniformly at random from each interval (SAEDashboard quantile_group_size).</summary>
    public int QuantileExamples { get; set; } = 5;
    /// <summary>Bins of each latent's activation histogram (over [min, max] of its firing activations).</summary>
    public int HistogramBins { get; set; } = 50;
    /// <summary>Tokens in each of the top and bottom logit tables.</summary>
    public int LogitTokens { get; set; } = 10;
    /// <summary>Bins of the histogram of a latent's logit effects over the vocabulary.</summary>
    public int LogitHistogramBins { get; set; } = 50;
    /// <summary>Seed of the quantile groups' sampling.</summary>
    public ulong Seed { get; set; } = 42;

    public void Validate()
    {
        if (TopExamples < 1) throw new ArgumentException($"top_examples must be at least 1, got {TopExamples}");
        if (ContextTokens < 0) throw new ArgumentException($"context_tokens must be non-negative, got {ContextTokens}");
        if (QuantileGroups < 0) throw new ArgumentException($"quantile_groups must be non-negative, got {QuantileGroups}");
        if (QuantileExamples < 1) throw new ArgumentException($"quantile_examples must be at least 1, got {QuantileExamples}");
        if (HistogramBins < 1) throw new ArgumentException($"histogram_bins must be at least 1, got {HistogramBins}");
        if (LogitTokens < 1) throw new ArgumentException($"logit_tokens must be at least 1, got {LogitTokens}");
        if (LogitHistogramBins < 1) throw new ArgumentException($"logit_histogram_bins must be at least 1, got {LogitHistogramBins}");
    }
}

/// <summary>Why an example was kept: among a latent's top activations, or drawn from one of its quantile intervals.</summary>
public enum ExampleKind { Top, Quantile }

/// <summary>
/// One position where a latent fired, with its context: the tokens of its context window from
/// <see cref="ContextStart"/> (clipped to the window) and the latent's activation at every one of them (0 where it did
/// not fire or the position is excluded, e.g. BOS). <see cref="Sequence"/> numbers the analysed contexts (or
/// documents) from 0; <see cref="Text"/> is the document's text when the input was one activation per document.
/// </summary>
public sealed record FeatureExample(int Feature, ExampleKind Kind, int Group, int Rank, float Activation, long Sequence, int Position,
    int ContextStart, int[] TokenIds, string[] Tokens, float[] Acts)
{
    public string? Text { get; init; }
    /// <summary>Index of the example's own position within <see cref="TokenIds"/>.</summary>
    public int Center => Position - ContextStart;
}

/// <summary>Equal-width bins over [Min, Max]; the last bin includes Max.</summary>
public sealed record Histogram(double Min, double Max, long[] Counts)
{
    public int Bins => Counts.Length;
    public double Width => Bins == 0 ? 0 : (Max - Min) / Bins;
    public double Edge(int i) => Min + Width * i;
    public long Total => Counts.Sum();

    /// <summary>The bins of <paramref name="values"/> over their own [min, max]; all in one bin when they are equal.</summary>
    public static Histogram Of(ReadOnlySpan<float> values, int bins)
    {
        if (values.IsEmpty) return new Histogram(0, 0, new long[bins]);
        float lo = values[0], hi = values[0];
        foreach (float v in values) { if (v < lo) lo = v; if (v > hi) hi = v; }
        var h = new Histogram(lo, hi, new long[bins]);
        foreach (float v in values) h.Counts[h.BinOf(v)]++;
        return h;
    }

    /// <summary>The bin holding <paramref name="v"/> (clamped into range).</summary>
    public int BinOf(double v) => BinOf(v, Min, Max, Bins);

    /// <summary>The bin of <paramref name="v"/> among <paramref name="bins"/> equal bins over [min, max] (0 when max ≤ min).</summary>
    public static int BinOf(double v, double min, double max, int bins)
    {
        if (!(max > min)) return 0;
        return Math.Clamp((int)((v - min) / (max - min) * bins), 0, bins - 1);
    }
}

/// <summary>
/// One quantile group: the latent's firings with activation in (Lower, Upper] (SAEDashboard's interval sampling:
/// the intervals split (0, max] evenly), how many there were, their share of all analysed positions, and examples
/// drawn uniformly without replacement among them.
/// </summary>
public sealed record QuantileGroup(int Index, double Lower, double Upper, long Count, double Fraction, IReadOnlyList<FeatureExample> Examples);

/// <summary>A token and a latent's direct effect on its logit.</summary>
public sealed record LogitEntry(int TokenId, string Token, float Value);

/// <summary>
/// The per-latent statistics: firings (activation &gt; 0 at a kept position) and their share of positions, the largest
/// and smallest firing activation, the mean activation over all positions (drrik's mean_activation) and over firing
/// positions only, and the decoder row's norm.
/// </summary>
public sealed record FeatureSummaryRow(int Feature, long Fires, double Density, double MaxActivation, double MinActivation,
    double MeanActivation, double MeanActiveActivation, double DecoderNorm);

/// <summary>What an analysis holds about one latent.</summary>
public sealed record FeatureDetail
{
    public required FeatureSummaryRow Stats { get; init; }
    public required Histogram ActivationHistogram { get; init; }
    public required IReadOnlyList<FeatureExample> TopExamples { get; init; }
    public required IReadOnlyList<QuantileGroup> QuantileGroups { get; init; }
    /// <summary>Values of the decoder row (drrik plot_decoder_weights).</summary>
    public required Histogram DecoderHistogram { get; init; }
    /// <summary>Tokens whose logits the decoder direction raises most (empty when the SAE's output is not mapped to the residual stream).</summary>
    public IReadOnlyList<LogitEntry> TopLogits { get; init; } = [];
    public IReadOnlyList<LogitEntry> BottomLogits { get; init; } = [];
    public Histogram? LogitHistogram { get; init; }
    public int Feature => Stats.Feature;
}

/// <summary>The analysis as a whole: what was analysed, with which settings, and the SAE's overall metrics.</summary>
public sealed record AnalysisSummary
{
    public required string SaeName { get; init; }
    public required string SaePath { get; init; }
    public required string Architecture { get; init; }
    public required int DIn { get; init; }
    public required int DSae { get; init; }
    public required string HookName { get; init; }
    public string? ModelPath { get; init; }
    public string? DatasetPath { get; init; }
    /// <summary>"tokens" (a model run over text) or "activations" (one row per document).</summary>
    public required string Input { get; init; }
    /// <summary>Contexts (or documents) analysed.</summary>
    public required long Sequences { get; init; }
    /// <summary>Positions counted (kept tokens, or documents).</summary>
    public required long Positions { get; init; }
    /// <summary>How the logit tables were made, or why there are none.</summary>
    public required string LogitNote { get; init; }
    /// <summary>Overall metrics by SAELens name (l0, explained_variance, mse, ..., dead_latents).</summary>
    public required IReadOnlyDictionary<string, double> Metrics { get; init; }
    /// <summary>The job's settings by snake_case key.</summary>
    public required JsonObject Settings { get; init; }
    /// <summary>The SAE's cfg.json.</summary>
    public required JsonObject SaeConfig { get; init; }
}

/// <summary>
/// The result of an analysis, exactly what its feature store holds: the summary, one row of statistics per latent and
/// the details (histograms, examples, logit tables) of every latent.
/// </summary>
public sealed class FeatureAnalysis : IFeatureSource
{
    public required AnalysisSummary Summary { get; init; }
    public required IReadOnlyList<FeatureDetail> Features { get; init; }

    public FeatureDetail this[int feature] => Detail(feature);
    public IReadOnlyList<FeatureSummaryRow> Rows => Features.Select(f => f.Stats).ToArray();

    /// <summary>The latent's details (an analysis of some latents only holds them in ascending latent order).</summary>
    public FeatureDetail Detail(int feature)
    {
        if (feature >= 0 && feature < Features.Count && Features[feature].Feature == feature) return Features[feature];
        return Features.FirstOrDefault(f => f.Feature == feature) ?? throw new KeyNotFoundException($"latent {feature} is not in this analysis");
    }
}
