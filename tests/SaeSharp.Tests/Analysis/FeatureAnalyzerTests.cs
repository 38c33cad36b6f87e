using SaeSharp.Analysis;
using SaeSharp.Data;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Analysis;

/// <summary>The analysis of planted features: every statistic, example, interval and logit checked against values computed directly.</summary>
public class FeatureAnalyzerTests
{
    private static readonly FeatureAnalysisOptions Options = new();

    [SharedFact(Gpt2Weights)]
    public void StatisticsAndTopExamplesAreExactlyThePlantedFirings()
    {
        var f = new PlantedFeatures();
        var a = f.Analyze(Options, batchSize: 5, Compute.All);
        Assert.Equal(f.KeptPositions, a.Summary.Positions);
        Assert.Equal(f.Sequences.Length, a.Summary.Sequences);
        for (int j = 0; j < PlantedFeatures.DSae; j++)
        {
            var firings = f.Firings(j);
            var d = a[j];
            Assert.Equal(firings.Count, d.Stats.Fires);
            Assert.Equal((double)firings.Count / f.KeptPositions, d.Stats.Density, 12);
            if (firings.Count == 0)
            {
                Assert.Empty(d.TopExamples);
                Assert.Equal(0, d.ActivationHistogram.Total);
                continue;
            }
            Assert.True(firings.Count > Options.TopExamples, $"latent {j} fires {firings.Count} times; the fixture needs more than the top {Options.TopExamples}");
            Assert.Equal(firings.Max(x => x.Value), d.Stats.MaxActivation, 6);
            Assert.Equal(firings.Min(x => x.Value), d.Stats.MinActivation, 6);
            Assert.Equal(firings.Sum(x => (double)x.Value) / f.KeptPositions, d.Stats.MeanActivation, 6);
            Assert.Equal(firings.Average(x => (double)x.Value), d.Stats.MeanActiveActivation, 6);

            // Top examples: the largest activations, ties to the earlier position in the stream.
            var expected = firings.OrderByDescending(x => x.Value).ThenBy(x => x.Seq).ThenBy(x => x.Pos).Take(Options.TopExamples).ToList();
            Assert.Equal(expected.Select(x => (x.Seq, x.Pos)), d.TopExamples.Select(e => ((int)e.Sequence, e.Position)));
            foreach (var e in d.TopExamples) CheckContext(f, j, e);

            // Histogram: 50 equal bins over [min, max] of the firing activations, counts summing to the firings.
            double lo = firings.Min(x => x.Value), hi = firings.Max(x => x.Value);
            var counts = new long[Options.HistogramBins];
            foreach (var x in firings) counts[Math.Min(Options.HistogramBins - 1, (int)((x.Value - lo) / (hi - lo) * Options.HistogramBins))]++;
            Assert.Equal(counts, d.ActivationHistogram.Counts);
            Assert.Equal(firings.Count, d.ActivationHistogram.Total);
            Assert.Equal(lo, d.ActivationHistogram.Min, 6);
            Assert.Equal(hi, d.ActivationHistogram.Max, 6);
        }
        Assert.Equal(PlantedFeatures.DSae - PlantedFeatures.Planted.Length, a.Summary.Metrics["dead_latents"]);
        double firingsPerPosition = Enumerable.Range(0, PlantedFeatures.DSae).Sum(j => f.Firings(j).Count) / (double)f.KeptPositions;
        Assert.Equal(firingsPerPosition, a.Summary.Metrics["l0"], 12);
    }

    [SharedFact(Gpt2Weights)]
    public void QuantileGroupsSampleEachIntervalWithoutReplacement()
    {
        var f = new PlantedFeatures();
        var a = f.Analyze(Options, batchSize: 4, Compute.All);
        for (int j = 0; j < PlantedFeatures.Planted.Length; j++)
        {
            var firings = f.Firings(j);
            double max = firings.Max(x => x.Value);
            var groups = a[j].QuantileGroups;
            Assert.Equal(Options.QuantileGroups, groups.Count);
            for (int g = 0; g < groups.Count; g++)
            {
                double lower = max * g / groups.Count, upper = max * (g + 1) / groups.Count;
                var inside = firings.Where(x => x.Value > lower && x.Value <= upper).ToList();
                var group = groups[g];
                Assert.Equal(lower, group.Lower, 6);
                Assert.Equal(upper, group.Upper, 6);
                Assert.Equal(inside.Count, group.Count);
                Assert.Equal((double)inside.Count / f.KeptPositions, group.Fraction, 12);
                Assert.Equal(Math.Min(Options.QuantileExamples, inside.Count), group.Examples.Count);
                Assert.Equal(group.Examples.Count, group.Examples.Select(e => (e.Sequence, e.Position)).Distinct().Count());
                foreach (var e in group.Examples)
                {
                    Assert.Contains(((int)e.Sequence, e.Position, e.Activation), inside);
                    CheckContext(f, j, e);
                }
            }
            Assert.Equal(firings.Count, groups.Sum(g => g.Count));
        }
        // Several intervals are populated, so the check above covered more than the top one.
        Assert.True(a[0].QuantileGroups.Count(g => g.Count > 0) >= 5);
    }

    [SharedFact(Gpt2Weights)]
    public void ResultsDoNotDependOnBatchingOrThreads()
    {
        var f = new PlantedFeatures(sequences: 7);
        var one = f.Analyze(Options, batchSize: 1, Compute.Single);
        var many = f.Analyze(Options, batchSize: 7, Compute.All);
        for (int j = 0; j < PlantedFeatures.DSae; j++)
        {
            Assert.Equal(Keys(one[j].TopExamples), Keys(many[j].TopExamples));
            Assert.Equal(one[j].QuantileGroups.Select(g => Keys(g.Examples)), many[j].QuantileGroups.Select(g => Keys(g.Examples)));
            Assert.Equal(one[j].ActivationHistogram.Counts, many[j].ActivationHistogram.Counts);
        }
        // Another seed draws other interval samples.
        var reseeded = new PlantedFeatures(sequences: 7).Analyze(Options with { Seed = 7 }, 7, Compute.All);
        Assert.NotEqual(Keys(one[0].QuantileGroups.SelectMany(g => g.Examples).ToList()), Keys(reseeded[0].QuantileGroups.SelectMany(g => g.Examples).ToList()));
    }

    private static List<(long, int)> Keys(IReadOnlyList<FeatureExample> examples) => examples.Select(e => (e.Sequence, e.Position)).ToList();

    [SharedFact(Gpt2Weights)]
    public void LogitTablesEqualTheDecoderThroughTheUnembeddingComputedDirectly()
    {
        // The planted fixture zeroes the (tied) unembedding, so this one keeps the random model's.
        var m = LoadGpt2();
        var sae = Hooked(m, Random("topk", m.Config.DModel, Metadata("blocks.1.hook_resid_post"), dSae: 12));
        var a = new FeatureAnalyzer(Options, Compute.All).Analyze(m, sae, Sequences(m, 2, 16, bos: 0), 2, [0], tokenizer: null);
        var w = m.Weights;
        int d = m.Config.DModel, vocab = m.Config.VocabSize;
        for (int j = 0; j < sae.Sae.Config.DSae; j++)
        {
            var effect = new double[vocab];
            for (int v = 0; v < vocab; v++)
                for (int k = 0; k < d; k++) effect[v] += (double)sae.Sae.WDec[j, k] * w.LnFinal.Gain[k] * w.Unembed[v, k];
            var top = a[j].TopLogits;
            Assert.Equal(Options.LogitTokens, top.Count);
            Assert.Equal(Enumerable.Range(0, vocab).OrderByDescending(v => effect[v]).Take(Options.LogitTokens), top.Select(t => t.TokenId));
            Assert.Equal(Enumerable.Range(0, vocab).OrderBy(v => effect[v]).Take(Options.LogitTokens), a[j].BottomLogits.Select(t => t.TokenId));
            foreach (var t in top.Concat(a[j].BottomLogits)) Assert.Equal(effect[t.TokenId], t.Value, 4);
            Assert.Equal(vocab, a[j].LogitHistogram!.Total);
            Assert.Equal(effect.Min(), a[j].LogitHistogram!.Min, 4);
            Assert.Equal(effect.Max(), a[j].LogitHistogram!.Max, 4);
        }
        Assert.Contains("final norm gain", a.Summary.LogitNote);
    }

    /// <summary>An analysis of some latents (a matched feature's partners) holds exactly what the whole analysis holds for them.</summary>
    [SharedFact(Gpt2Weights)]
    public void SomeLatentsOnlyGetWhatTheWholeAnalysisHoldsForThem()
    {
        var m = LoadGpt2();
        var sae = Hooked(m, Random("topk", m.Config.DModel, Metadata("blocks.1.hook_resid_post"), dSae: 12));
        var seqs = Sequences(m, 6, 24, bos: 0);
        var whole = new FeatureAnalyzer(Options, Compute.All).Analyze(m, sae, seqs, 4, [0], tokenizer: null);
        // The two latents that fire most, and the one that fires least but fires (some batches hold none of the three).
        var byFires = whole.Features.Where(d => d.Stats.Fires > 0).OrderByDescending(d => d.Stats.Fires).ThenBy(d => d.Feature).Select(d => d.Feature).ToList();
        int[] chosen = [byFires[^1], byFires[1], byFires[0]];
        Assert.True(whole[byFires[1]].Stats.Fires > Options.TopExamples, $"latent {byFires[1]} fires {whole[byFires[1]].Stats.Fires} times; the fixture needs more than the top {Options.TopExamples}");
        var some = new FeatureAnalyzer(Options, Compute.All) { Latents = chosen }.Analyze(m, sae, seqs, 4, [0], tokenizer: null);
        Assert.Equal(chosen.Order(), some.Features.Select(d => d.Feature));
        Assert.Equal(whole.Summary.Positions, some.Summary.Positions);
        Assert.Equal(whole.Summary.Metrics["explained_variance"], some.Summary.Metrics["explained_variance"], 12);
        foreach (int j in chosen)
        {
            FeatureDetail a = whole[j], b = some[j];
            Assert.Equal(a.Stats, b.Stats);
            Assert.Equal(a.ActivationHistogram.Counts, b.ActivationHistogram.Counts);
            Assert.Equal(a.DecoderHistogram.Counts, b.DecoderHistogram.Counts);
            Assert.Equal(a.TopExamples.Select(e => (e.Sequence, e.Position, e.Activation, e.Feature)), b.TopExamples.Select(e => (e.Sequence, e.Position, e.Activation, e.Feature)));
            Assert.Equal(a.TopExamples[0].Acts, b.TopExamples[0].Acts);
            Assert.Equal(a.QuantileGroups.Select(g => Keys(g.Examples)), b.QuantileGroups.Select(g => Keys(g.Examples)));
            Assert.Equal(a.TopLogits, b.TopLogits);
            Assert.Equal(a.BottomLogits, b.BottomLogits);
        }
        Assert.Throws<KeyNotFoundException>(() => some.Detail(Enumerable.Range(0, 12).First(j => !chosen.Contains(j))));
        Assert.Contains("holds 3 of 12", Assert.Throws<ArgumentException>(() => FeatureStore.Write(Path.Combine(Path.GetTempPath(), $"never-{Guid.NewGuid():N}.db"), some)).Message);
        Assert.Contains("below d_sae 12", Assert.Throws<ArgumentException>(() => new FeatureAnalyzer(Options, Compute.All) { Latents = [12] }.Analyze(m, sae, seqs, 4, [0], null)).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => new FeatureAnalyzer(Options, Compute.All) { Latents = [1, 1] }.Analyze(m, sae, seqs, 4, [0], null)).Message);
    }

    [SharedFact(Gpt2Weights)]
    public void HookZAndMlpPostDirectionsGoThroughTheirOutputWeights()
    {
        var m = LoadGpt2();
        var z = Hooked(m, Random("standard", m.Config.DHead, Metadata("blocks.1.attn.hook_z", head: 2), dSae: 3));
        var (dirs, fold, _) = LogitTables.ResidualDirections(m, z, Compute.All);
        Assert.True(fold);
        var o = m.Weights.Blocks[1].O; // the head's d_head slice of the flattened z, through W_O
        for (int j = 0; j < 3; j++)
            for (int c = 0; c < m.Config.DModel; c++)
            {
                double sum = 0;
                for (int i = 0; i < m.Config.DHead; i++)
                {
                    int row = 2 * m.Config.DHead + i;
                    sum += z.Sae.WDec[j, i] * (o.OutIn ? o.Weight[c, row] : o.Weight[row, c]);
                }
                Assert.Equal(sum, dirs![j, c], 4);
            }
        var mlp = Hooked(m, Random("standard", m.Config.DMlp, Metadata("blocks.0.mlp.hook_post"), dSae: 3));
        var (mlpDirs, _, _) = LogitTables.ResidualDirections(m, mlp, Compute.All);
        var wOut = m.Weights.Blocks[0].Out;
        for (int j = 0; j < 3; j++)
            for (int c = 0; c < m.Config.DModel; c++)
            {
                double sum = 0;
                for (int i = 0; i < m.Config.DMlp; i++) sum += mlp.Sae.WDec[j, i] * (wOut.OutIn ? wOut.Weight[c, i] : wOut.Weight[i, c]);
                Assert.Equal(sum, mlpDirs![j, c], 4);
            }
        var q = Hooked(m, Random("standard", m.Config.NHeads * m.Config.DHead, Metadata("blocks.1.attn.hook_q"), dSae: 3));
        var (none, _, note) = LogitTables.ResidualDirections(m, q, Compute.All);
        Assert.Null(none);
        Assert.Contains("no logit tables", note);
    }

    /// <summary>An example's context: the window's tokens clipped to its sequence, and latent j's activation at each of them.</summary>
    private static void CheckContext(PlantedFeatures f, int j, FeatureExample e)
    {
        var seq = f.Sequences[e.Sequence];
        int lo = Math.Max(0, e.Position - Options.ContextTokens), hi = Math.Min(seq.Length - 1, e.Position + Options.ContextTokens);
        Assert.Equal(lo, e.ContextStart);
        Assert.Equal(seq[lo..(hi + 1)], e.TokenIds);
        Assert.Equal(PlantedFeatures.Planted[j], e.TokenIds[e.Center]);
        Assert.Equal(f.Value(e.Position), e.Activation);
        for (int i = 0; i < e.Acts.Length; i++)
            Assert.Equal(seq[lo + i] == PlantedFeatures.Planted[j] ? f.Value(lo + i) : 0f, e.Acts[i]);
    }

    [Fact]
    public void RowsAreDocumentsWithTheirText()
    {
        // Identity-like SAE over 4 dimensions: latent j = ReLU(x_j); documents whose row puts v in dimension j fire latent j with v.
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = 4, DSae = 4, ApplyBDecToInput = false }, Compute.All);
        for (int j = 0; j < 4; j++) { sae.WEnc[j, j] = 1; sae.WDec[j, j] = 1; }
        int n = 30;
        var rows = new Tensor(n, 4);
        var docs = new List<DocumentSample>();
        for (int i = 0; i < n; i++)
        {
            rows[i, i % 3] = 1 + i; // latents 0..2 fire, latent 3 never
            docs.Add(new DocumentSample(i, $"document {i}", [1, 50 + i], 1));
        }
        var a = new FeatureAnalyzer(Options with { TopExamples = 4 }, Compute.All).AnalyzeRows(sae, "rows", rows, docs, ["blocks.0.mlp.hook_post"], model: null, tokenizer: null);
        Assert.Equal(n, a.Summary.Positions);
        Assert.Equal("activations", a.Summary.Input);
        for (int j = 0; j < 3; j++)
        {
            Assert.Equal(10, a[j].Stats.Fires);
            var expected = Enumerable.Range(0, n).Where(i => i % 3 == j).OrderByDescending(i => i).Take(4).ToList();
            Assert.Equal(expected, a[j].TopExamples.Select(e => (int)e.Sequence));
            Assert.Equal(expected.Select(i => $"document {i}"), a[j].TopExamples.Select(e => e.Text));
            Assert.Equal(expected.Select(i => new[] { 50 + i }), a[j].TopExamples.Select(e => e.TokenIds));
            Assert.Equal(expected.Select(i => (float)(1 + i)), a[j].TopExamples.Select(e => e.Activation));
        }
        Assert.Equal(0, a[3].Stats.Fires);
        Assert.Empty(a[0].TopLogits);
        Assert.Contains("no logit tables", a.Summary.LogitNote);
        Assert.Equal(1.0, a.Summary.Metrics["explained_variance"], 6);
        Assert.Throws<ArgumentException>(() => new FeatureAnalyzer(Options, Compute.All).AnalyzeRows(sae, "rows", rows, docs.Take(5).ToList(), ["h"], null, null));
    }

    [Fact]
    public void IntervalsAreHalfOpenAboveZero()
    {
        // Edges max·g/10 in float64: with max 10 they are the integers.
        Assert.Equal(0, FeatureCollector.IntervalOf(1f, 10f, 10));
        Assert.Equal(0, FeatureCollector.IntervalOf(0.25f, 10f, 10));
        Assert.Equal(9, FeatureCollector.IntervalOf(10f, 10f, 10));
        Assert.Equal(4, FeatureCollector.IntervalOf(5f, 10f, 10)); // 5 is the upper edge of (4, 5]
        Assert.Equal(5, FeatureCollector.IntervalOf(5.001f, 10f, 10));
        Assert.Equal(2, FeatureCollector.IntervalOf(3f, 10f, 10)); // (2, 3]
    }
}
