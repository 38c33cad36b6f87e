using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Tests.Cli;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Runs;

/// <summary>`saesharp eval` end to end on stories260K and held-out TinyStories text: files, an independent NLL, errors.</summary>
public sealed class EvalRunTests : IDisposable
{
    private const string Hook = "blocks.2.hook_resid_post";
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-eval").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private string HeldOut() => HeldOutText(_dir, 120);

    private string Save(Sae sae, string name) => SaveIn(_dir, sae, name);

    private static JsonObject Meta(string hook, string? hookOut = null)
    {
        var m = Metadata(hook, hookOut: hookOut);
        m["context_size"] = 64;
        return m;
    }

    [SharedFact(StoriesWeights, StoriesTokenizer, Corpus)]
    public void EvaluatesSeveralSaesWritesEveryFileAndItsCleanLossIsTheModelsNll()
    {
        string data = HeldOut();
        string topk = Save(Random("topk", 64, Meta(Hook)), "topk");
        string tc = Save(Random("transcoder", 64, Meta("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"), dOut: 64), "tc");
        string outDir = Path.Combine(_dir, "out");
        var lines = new StringWriter();
        var settings = new EvalSettings { Tokens = 2048, Contexts = new ContextSettings { ContextSize = 64, StoreBatchSizePrompts = 8 } };
        var r = EvalRun.Execute(settings, SharedData.Path(Stories), [topk, tc], data, null, outDir,
            new TextReporter(lines), Compute.All);
        Assert.Equal(32, r.Contexts);
        Assert.Equal(2, r.Results.Count);

        // Independent mean NLL: each context alone through the single-sequence forward, predictions from non-special tokens.
        var m = LoadStories();
        var tokenizer = SaeSharp.Text.Tokenizers.Load(SharedData.Path(Stories));
        var contexts = ModelInputs.Contexts(File.ReadLines(data).Where(l => l.Length > 0).Select(l => tokenizer.Encode(l)), m.Config, settings.Contexts).Take(32).ToList();
        double sum = 0;
        int n = 0;
        foreach (var c in contexts)
        {
            var lp = m.TokenLogProbs(c);
            for (int t = 0; t < lp.Length; t++) if (c[t] is not (1 or 2)) { sum -= lp[t]; n++; }
        }
        Assert.Equal(sum / n, r.Results[0]["ce_loss_without_sae"], 1e-5);
        Assert.Equal(n, r.Results[0]["positions_ce_loss"]);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, EvalRun.JsonFile)))!;
        Assert.Equal(2048, (long)json["inputs"]!["tokens"]!);
        Assert.Equal(8, (int)json["settings"]!["store_batch_size_prompts"]!);
        Assert.Equal(64, (int)json["settings"]!["context_size"]!);
        var first = json["saes"]![0]!["metrics"]!;
        foreach (var group in new[] { "model_behavior_preservation", "model_performance_preservation", "reconstruction_quality", "shrinkage", "sparsity", "misc_metrics", "token_stats" })
            Assert.NotNull(first[group]);
        Assert.Equal(r.Results[0]["ce_loss_score"], (double)first["model_performance_preservation"]!["ce_loss_score"]!);
        Assert.Equal("blocks.1.hook_mlp_out", (string?)json["saes"]![1]!["hook_name_out"]);

        var csv = File.ReadAllLines(Path.Combine(outDir, EvalRun.CsvFile));
        Assert.Equal(3, csv.Length);
        var header = csv[0].Split(',');
        Assert.Contains("kl_div_score", header);
        Assert.Equal(r.Results[1]["l0"], double.Parse(csv[2].Split(',')[Array.IndexOf(header, "l0")], System.Globalization.CultureInfo.InvariantCulture));

        using var stats = SafetensorsFile.Open(Path.Combine(outDir, EvalRun.FeatureStatsFile));
        Assert.Equal(r.Results[0].FeatureMetrics["feature_density"], stats.ReadFloat32("topk/feature_density").ToArray());
        Assert.Contains("tc/max_decoder_cosine_sim", stats.Names);
        Assert.Equal([32], stats.Entry("topk/encoder_norm").Shape);
        Assert.Contains("ce_loss_score", lines.ToString());
    }

    [SharedFact(StoriesWeights, StoriesTokenizer, Corpus)]
    public void CommandPrintsTheHeadlineMetrics()
    {
        string data = HeldOut();
        string sae = Save(Random("topk", 64, Meta(Hook)), "topk");
        var (code, output, err) = CliRunner.Run("eval", "--model", SharedData.Path(Stories), "--sae", sae, "--dataset", data, "--tokens", "512", "--context-size", "64",
            "--out", Path.Combine(_dir, "cli"), "--ablation", "mean", "--include-special-tokens");
        Assert.True(code == 0, err);
        foreach (var metric in new[] { "ce_loss_score", "kl_div_score", "explained_variance", "l0" }) Assert.Contains(metric, output);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "cli", EvalRun.JsonFile)))!;
        Assert.Equal("mean", (string?)json["settings"]!["ablation"]);
        Assert.Equal(8 * 63, (double)json["saes"]![0]!["metrics"]!["token_stats"]!["positions_ce_loss"]!); // nothing excluded
    }

    [SharedFact(StoriesWeights, StoriesTokenizer, Corpus)]
    public void BadInputGetsAnErrorNamingTheFile()
    {
        string data = HeldOut();
        string model = SharedData.Path(Stories);
        string Error(params string[] args)
        {
            var (code, _, err) = CliRunner.Run(["eval", "--model", model, "--context-size", "64", "--out", Path.Combine(_dir, "bad"), .. args]);
            Assert.Equal(1, code);
            return err;
        }
        string narrow = Save(Identity(32, Meta(Hook)), "narrow");
        Assert.Contains($"{Path.Combine(narrow, "cfg.json")}: d_in 32 does not fit hook '{Hook}'", Error("--sae", narrow, "--dataset", data));
        string deep = Save(Identity(64, Meta("blocks.7.hook_resid_post")), "deep");
        Assert.Contains($"{Path.Combine(deep, "cfg.json")}: hook 'blocks.7.hook_resid_post' is not a hook point", Error("--sae", deep, "--dataset", data));
        string empty = Path.Combine(_dir, "empty.txt");
        File.WriteAllText(empty, "Once upon a time.\n");
        string ok = Save(Identity(64, Meta(Hook)), "ok");
        Assert.Contains($"{empty}: no context of 64 tokens", Error("--sae", ok, "--dataset", empty));
        Assert.Contains("ablation: expected zero or mean", Error("--sae", ok, "--dataset", data, "--ablation", "half"));
        Assert.Contains("unknown setting 'tokenz'", Error("--sae", ok, "--dataset", data, "--set", "tokenz=5"));
        Assert.Contains("is not a folder", Error("--sae", Path.Combine(_dir, "nope"), "--dataset", data));
    }
}
