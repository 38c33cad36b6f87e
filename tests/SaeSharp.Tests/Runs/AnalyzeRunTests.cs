using SaeSharp.Analysis;
using SaeSharp.Data;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Tests.Cli;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Runs;

/// <summary>`saesharp analyze` and `saesharp report` end to end on stories260K: the store, the report, the figures and the folder rules.</summary>
public class AnalyzeRunTests
{
    private static string SavedSae(TempDir dir, string hook = "blocks.2.hook_resid_post")
    {
        var m = LoadStories();
        var sae = Random("topk", m.Config.DModel, Metadata(hook), dSae: 48);
        string path = dir.File("sae");
        SaeFiles.Save(sae, path);
        return path;
    }

    private static AnalyzeSettings Small() => new()
    {
        Tokens = 1024, Contexts = new ContextSettings { ContextSize = 64, StoreBatchSizePrompts = 4 }, Report = new ReportSettings { ReportFeatures = 2 },
    };

    [SharedFact(StoriesWeights, Corpus)]
    public void AnalyzeWritesTheStoreTheReportAndTheFigures()
    {
        using var dir = new TempDir();
        string sae = SavedSae(dir), output = dir.File("out");
        var inputs = new AnalyzeInputs { SaeDir = sae, ModelPath = SharedData.Path(Stories), Dataset = SharedData.Path(Corpus) };
        var r = AnalyzeRun.Execute(Small(), inputs, output, overwrite: false, TextReporter.Silent, Compute.All);
        Assert.Equal(16, r.Analysis.Summary.Sequences); // 1024 tokens in contexts of 64
        // BOS begins each context and separates documents; it counts nowhere.
        var contexts = ModelInputs.ContextWindows(null, inputs.Dataset, inputs.ModelPath!, LoadStories().Config, Small().Contexts, 1024);
        Assert.Equal(contexts.Sum(c => c.Count(t => t != 1 && t != 2)), r.Analysis.Summary.Positions);
        using (var store = FeatureStore.Open(r.StorePath))
        {
            Assert.Equal(48, store.Rows.Count);
            Assert.Equal(Path.GetFullPath(sae), store.Summary.SaePath);
            Assert.Equal(64, (int)store.Summary.Settings["context_size"]!);
            var busiest = store.Page("density", descending: true, 0, 1)[0];
            var detail = store.Detail(busiest.Feature);
            Assert.NotEmpty(detail.TopExamples);
            Assert.All(detail.TopExamples, e => Assert.Equal(e.TokenIds.Length, e.Tokens.Length));
            Assert.Contains(detail.TopExamples, e => e.Tokens.Any(t => t.Trim().Length > 1)); // real token strings from the tokenizer
            Assert.Equal(10, detail.TopLogits.Count);
        }
        string html = File.ReadAllText(Path.Combine(output, ReportRun.ReportFile));
        Assert.Equal(2, r.Report.Dashboards.Count);
        foreach (int j in r.Report.Dashboards) Assert.Contains($"id=\"feature-{j}\"", html);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/", "")); // offline: nothing fetched
        foreach (var name in new[] { "feature_density", "top_features_density", "top_features_max_activation", "decoder_weights", $"feature_{r.Report.Dashboards[0]}_dashboard" })
        {
            Assert.True(File.Exists(Path.Combine(output, ReportRun.FiguresFolder, name + ".png")), name);
            Assert.True(File.Exists(Path.Combine(output, ReportRun.FiguresFolder, name + ".svg")), name);
        }
        Assert.Empty(Directory.GetFiles(output, "*.spill"));

        var e = Assert.Throws<InvalidOperationException>(() => AnalyzeRun.Execute(Small(), inputs, output, false, TextReporter.Silent, Compute.All));
        Assert.Contains("--overwrite", e.Message);
        AnalyzeRun.Execute(Small() with { Report = new ReportSettings { Figures = false, Dashboards = "1,2,3" } }, inputs, output, overwrite: true, TextReporter.Silent, Compute.All);
        Assert.False(Directory.Exists(Path.Combine(output, ReportRun.FiguresFolder)));
        Assert.Contains("id=\"feature-3\"", File.ReadAllText(Path.Combine(output, ReportRun.ReportFile)));
    }

    [SharedFact(StoriesWeights, Corpus)]
    public void PerDocumentActivationsAreAnalysedWithTheirText()
    {
        using var dir = new TempDir();
        var m = LoadStories();
        var tokenizer = SaeSharp.Text.Tokenizers.Load(SharedData.Path(Stories));
        var texts = File.ReadLines(SharedData.Path(Corpus)).Where(l => l.Length > 0).Take(12).ToList();
        var (acts, meta) = DocumentExtraction.Extract(m, ["blocks.2.hook_resid_post"], texts.Select(t => tokenizer.Encode(t, true)).ToList(), texts);
        DocumentExtraction.Save(dir.File("extract"), acts, meta);
        var inputs = new AnalyzeInputs { SaeDir = SavedSae(dir), ModelPath = SharedData.Path(Stories), Activations = dir.File("extract") };
        var r = AnalyzeRun.Execute(Small() with { Report = new ReportSettings { ReportFeatures = 1, Figures = false } }, inputs, dir.File("out"), false, TextReporter.Silent, Compute.All);
        Assert.Equal("activations", r.Analysis.Summary.Input);
        Assert.Equal(12, r.Analysis.Summary.Positions);
        var top = r.Analysis.Features.First(f => f.TopExamples.Count > 0).TopExamples[0];
        Assert.Equal(meta.Samples[(int)top.Sequence].Text, top.Text);
        Assert.Equal(meta.Samples[(int)top.Sequence].TokenIds[^1], top.TokenIds[0]);
        Assert.NotEmpty(r.Analysis[0].TopLogits); // one residual hook and the model: logit tables
    }

    [SharedFact(StoriesWeights, Corpus)]
    public void TheCliAnalysesAndReports()
    {
        using var dir = new TempDir();
        string sae = SavedSae(dir), output = dir.File("out");
        var (code, stdout, err) = CliRunner.Run("analyze", "--model", SharedData.Path(Stories), "--sae", sae, "--dataset", SharedData.Path(Corpus),
            "--tokens", "512", "--context-size", "64", "--features", "1", "--figures", "false", "--out", output);
        Assert.True(code == 0, err);
        Assert.Contains("features.db", stdout);
        (code, stdout, err) = CliRunner.Run("report", "--store", Path.Combine(output, FeatureStore.FileName), "--dashboards", "0,5", "--out", dir.File("report"));
        Assert.True(code == 0, err);
        Assert.Contains("id=\"feature-5\"", File.ReadAllText(Path.Combine(dir.File("report"), ReportRun.ReportFile)));
        Assert.True(File.Exists(Path.Combine(dir.File("report"), ReportRun.FiguresFolder, "feature_5_dashboard.svg")));
        (code, _, err) = CliRunner.Run("report", "--store", Path.Combine(output, FeatureStore.FileName), "--dashboards", "999");
        Assert.Equal(1, code);
        Assert.Contains("error: dashboards: '999'", err);
        (code, _, err) = CliRunner.Run("analyze", "--sae", sae, "--dataset", SharedData.Path(Corpus), "--out", dir.File("x"));
        Assert.Equal(1, code);
        Assert.Contains("--model", err);
    }
}
