using SaeSharp.Data;
using SaeSharp.Evals;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Text;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Analysis;

/// <summary>Where a streaming analysis stands: batches and positions done, the running L0, explained variance and MSE.</summary>
public sealed record AnalysisProgress(int Batches, long Positions, double L0, double ExplainedVariance, double Mse);

/// <summary>
/// Feature analysis of one SAE, SAEDashboard's and drrik's FeatureVisualizer's statistics per latent: density, mean and
/// max activation, the activation histogram, the top activating positions with their context and the activation at
/// every context token, interval-sampled quantile groups, and the logit tables of its decoder direction. Over a model
/// (<see cref="Analyze"/>) it is one streaming pass of the model and the SAE over token contexts; over drrik-style
/// activations (<see cref="AnalyzeRows"/>) every row is one document. Memory is bounded by the latents, never by the
/// positions (<see cref="FeatureCollector"/>). The result is what the feature store holds.
/// </summary>
public sealed class FeatureAnalyzer(FeatureAnalysisOptions options, Compute compute)
{
    /// <summary>Where the collector's spill file goes between its two passes (default: the system temp folder).</summary>
    public string SpillDirectory { get; init; } = Path.GetTempPath();

    public FeatureAnalysisOptions Options => options;

    /// <summary>
    /// Runs <paramref name="model"/> with <paramref name="sae"/> over <paramref name="contexts"/> in batches of
    /// <paramref name="batchSize"/>; positions holding <paramref name="excludeTokens"/> count nowhere.
    /// <paramref name="afterBatch"/> gets the progress after every batch.
    /// </summary>
    public FeatureAnalysis Analyze(HookedTransformer model, HookedSae sae, IEnumerable<int[]> contexts, int batchSize,
        IReadOnlyCollection<int> excludeTokens, ITokenizer? tokenizer, Action<AnalysisProgress>? afterBatch = null, CancellationToken cancel = default)
    {
        var stream = new LatentStream(model, [sae], excludeTokens);
        var recon = new ReconstructionStats(sae.Site.OutputWidth);
        using var collector = NewCollector(sae.Sae);
        int batches = 0;
        foreach (var batch in stream.Stream(contexts, batchSize))
        {
            cancel.ThrowIfCancellationRequested();
            var acts = batch.Saes[0];
            collector.Add(acts.Codes(compute), batch.Sequences, batch.SeqLen, batch.Keep);
            recon.Add(acts.Target, acts.Forward.Output, batch.Keep);
            afterBatch?.Invoke(new AnalysisProgress(++batches, collector.Positions, (double)collector.Firings / Math.Max(1, collector.Positions), recon.ExplainedVariance, recon.Mse));
        }
        if (collector.Positions == 0) throw new InvalidDataException("the contexts hold no analysed position (every token was excluded, or there were none)");
        var (directions, foldGain, note) = LogitTables.ResidualDirections(model, sae, compute);
        var logits = directions is null ? null : LogitTables.Compute(directions, model, foldGain, options.LogitTokens, options.LogitHistogramBins, compute);
        var vocab = tokenizer is null ? null : TokenStrings(tokenizer, model.Config.VocabSize);
        var summary = Summary(sae.Sae, sae.Name, sae.Site.InputHook, "tokens", note, recon);
        return Assemble(collector.Finish(cancel), sae.Sae, summary, vocab, logits, texts: null);
    }

    /// <summary>
    /// Analyses <paramref name="rows"/> [documents, d_in] (drrik's one activation per document, as `saesharp extract`
    /// writes with its metadata.json <paramref name="documents"/>): every row is one position, its example shows the
    /// document's text and the token the activation was taken at. Logit tables need the model and a single hook that
    /// writes into the residual stream.
    /// </summary>
    public FeatureAnalysis AnalyzeRows(Sae sae, string name, Tensor rows, IReadOnlyList<DocumentSample> documents, IReadOnlyList<string> hooks,
        HookedTransformer? model, ITokenizer? tokenizer, CancellationToken cancel = default)
    {
        if (sae.Config.IsTranscoder) throw new ArgumentException($"{name}: a {sae.Config.Architecture} maps one hook to another; analyse it over a model (--model with --dataset), not over one activation per document");
        if (rows.Cols != sae.Config.DIn) throw new ArgumentException($"activations have {rows.Cols} columns, the SAE's d_in is {sae.Config.DIn}");
        if (documents.Count != rows.Rows) throw new ArgumentException($"{documents.Count} documents in the metadata for {rows.Rows} activation rows");
        var recon = new ReconstructionStats(sae.Config.DIn);
        using var collector = NewCollector(sae);
        const int Chunk = 1024;
        for (int start = 0; start < rows.Rows; start += Chunk)
        {
            cancel.ThrowIfCancellationRequested();
            int n = Math.Min(Chunk, rows.Rows - start);
            var x = rows.RowSlice(start, n);
            var forward = sae.Forward(x);
            // Each document is a one-position sequence holding the token its activation was read at (-1 when unknown).
            var seqs = Enumerable.Range(start, n).Select(i => new[] { TokenAt(documents[i]) }).ToArray();
            var keep = Enumerable.Repeat(true, n).ToArray();
            collector.Add(forward.Codes ?? SparseCodes.FromDense(forward.Features!, compute), seqs, 1, keep);
            recon.Add(x, forward.Output);
        }
        string hook = string.Join(",", hooks);
        LogitTable[]? logits = null;
        string note = "no logit tables: give the model to map decoder directions through its unembedding";
        if (model is not null && hooks.Count == 1)
        {
            var site = SaeSite.Create(model, hooks[0], null, hooks[0], null, sae.Config.DIn, sae.Config.DIn, name);
            var (directions, foldGain, why) = LogitTables.ResidualDirections(model, new HookedSae(name, sae, site), compute);
            note = why;
            if (directions is not null) logits = LogitTables.Compute(directions, model, foldGain, options.LogitTokens, options.LogitHistogramBins, compute);
        }
        else if (model is not null) note = $"no logit tables: the activations concatenate {hooks.Count} hooks";
        var vocab = tokenizer is null ? null : TokenStrings(tokenizer, model?.Config.VocabSize ?? tokenizer.VocabSize);
        var summary = Summary(sae, name, hook, "activations", note, recon);
        return Assemble(collector.Finish(cancel), sae, summary, vocab, logits, documents.Select(d => d.Text ?? "").ToArray());
    }

    private static int TokenAt(DocumentSample d) => d.Position >= 0 && d.Position < d.TokenIds.Length ? d.TokenIds[d.Position] : -1;

    private FeatureCollector NewCollector(Sae sae) =>
        new(sae.Config.DSae, options, Path.Combine(SpillDirectory, $"saesharp-analysis-{Guid.NewGuid():N}.spill"), compute);

    /// <summary>A readable string per token id: sentencepiece's ▁ as a space, byte-level tokens decoded to their text.</summary>
    public static string[] TokenStrings(ITokenizer tokenizer, int vocabSize) =>
        Enumerable.Range(0, vocabSize).Select(id =>
        {
            if (id >= tokenizer.VocabSize) return $"<{id}>";
            return tokenizer is ByteLevelBpeTokenizer ? tokenizer.Decode([id]) : tokenizer.TokenText(id).Replace('▁', ' ');
        }).ToArray();

    private AnalysisSummary Summary(Sae sae, string name, string hook, string input, string logitNote, ReconstructionStats recon) => new()
    {
        SaeName = name,
        SaePath = "",
        Architecture = sae.Config.Architecture,
        DIn = sae.Config.DIn,
        DSae = sae.Config.DSae,
        HookName = hook,
        Input = input,
        Sequences = 0,
        Positions = 0,
        LogitNote = logitNote,
        Metrics = new Dictionary<string, double>
        {
            ["explained_variance"] = recon.ExplainedVariance,
            ["mse"] = recon.Mse,
            ["cossim"] = recon.CosineSimilarity,
            ["l2_ratio"] = recon.L2Ratio,
        },
        Settings = ConfigBinder.ToJson(options),
        SaeConfig = SaeFiles.ConfigToJson(sae.Config),
    };

    private FeatureAnalysis Assemble(CollectedFeatures collected, Sae sae, AnalysisSummary summary, string[]? vocab, LogitTable[]? logits, string[]? texts)
    {
        long positions = collected.Positions;
        string Token(int id) => id < 0 ? "" : vocab is not null && id < vocab.Length ? vocab[id] : $"<{id}>";
        FeatureExample Example(Candidate c, int feature, ExampleKind kind, int group, int rank) =>
            new(feature, kind, group, rank, c.Value, c.Sequence, c.Position, c.ContextStart, c.TokenIds, c.TokenIds.Select(Token).ToArray(), c.Acts)
            { Text = texts?[c.Sequence] };
        IReadOnlyList<LogitEntry> Entries(IReadOnlyList<(int Token, float Value)> e) => e.Select(t => new LogitEntry(t.Token, Token(t.Token), t.Value)).ToArray();

        var details = new FeatureDetail[collected.Features.Count];
        double totalFires = 0, totalSum = 0;
        for (int j = 0; j < details.Length; j++)
        {
            var f = collected.Features[j];
            totalFires += f.Fires;
            totalSum += f.Sum;
            var decoder = sae.WDec.Row(j);
            var stats = new FeatureSummaryRow(j, f.Fires, (double)f.Fires / positions, f.Max, f.Min, f.Sum / positions,
                f.Fires > 0 ? f.Sum / f.Fires : 0, System.Numerics.Tensors.TensorPrimitives.Norm(decoder));
            details[j] = new FeatureDetail
            {
                Stats = stats,
                ActivationHistogram = f.Histogram,
                TopExamples = f.Top.Select((c, i) => Example(c, j, ExampleKind.Top, 0, i)).ToArray(),
                QuantileGroups = f.Groups.Select(g => new QuantileGroup(g.Index, g.Lower, g.Upper, g.Count, (double)g.Count / positions,
                    g.Samples.Select((c, i) => Example(c, j, ExampleKind.Quantile, g.Index, i)).ToArray())).ToArray(),
                DecoderHistogram = Histogram.Of(decoder, options.HistogramBins),
                TopLogits = logits is null ? [] : Entries(logits[j].Top),
                BottomLogits = logits is null ? [] : Entries(logits[j].Bottom),
                LogitHistogram = logits?[j].Histogram,
            };
        }
        var metrics = new Dictionary<string, double>(summary.Metrics)
        {
            ["l0"] = totalFires / positions,
            ["l1"] = totalSum / positions,
            ["dead_latents"] = details.Count(d => d.Stats.Fires == 0),
        };
        foreach (var (k, v) in FeatureSummary.Misc(details.Select(d => (float)d.Stats.Density).ToArray(), null, null)) metrics[k] = v;
        return new FeatureAnalysis
        {
            Summary = summary with { Sequences = collected.Sequences, Positions = positions, Metrics = metrics },
            Features = details,
        };
    }
}
