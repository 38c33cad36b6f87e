using System.Text.Json.Nodes;
using SaeSharp.Runs;
using SaeSharp.Tensors;
using SaeSharp.Data;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tests.Cli;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Data;

/// <summary>`saesharp train --model / --cache`: SAEs trained on stories260K activations streamed from TinyStories text.</summary>
public sealed class TrainFromModelTests : IDisposable
{
    private const string Model = "models/stories260K";
    private const string Corpus = "corpora/tinystories_validation_head.txt";
    private const string Hook = "blocks.2.hook_resid_post";
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-train-model").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    // The corpus split by documents: the first 90% for training, the rest held out.
    private (string Train, string[] HeldOut) SplitCorpus()
    {
        var lines = File.ReadAllLines(SharedData.Path(Corpus));
        int cut = lines.Length * 9 / 10;
        string train = Path.Combine(_dir, "train.txt");
        File.WriteAllLines(train, lines[..cut]);
        return (train, lines[cut..]);
    }

    private static TrainSettings TopK(long steps, int batch) => new()
    {
        Architecture = "topk", DSae = 512, K = 8, Steps = steps, BatchSize = batch, Lr = 1e-3, Seed = 7,
        MetricsEvery = 10, CheckpointEvery = 0, Contexts = new() { StoreBatchSizePrompts = 16 }, NBatchesInBuffer = 8,
    };

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void TopKOnTinyStoriesExplainsHeldOutActivationsAndReloadsIdentically()
    {
        var (train, heldOut) = SplitCorpus();
        var settings = TopK(steps: 250, batch: 1024);
        string model = SharedData.Path(Model);
        var data = TrainInputs.Open(settings, Compute.All, null, null, model, Hook, train, null);
        string outDir = Path.Combine(_dir, "run");
        var result = TrainRun.Execute(settings, data, outDir, Compute.All);

        // Held-out activations: the unseen stories, batched exactly as in training.
        var m = HookedTransformer.Load(model, Compute.All);
        var tokenizer = SaeSharp.Text.Tokenizers.Load(model);
        var contexts = ModelInputs.Contexts(heldOut.Where(l => l.Length > 0).Select(l => tokenizer.Encode(l)), m.Config, settings.Contexts)
            .Take(64).ToList();
        var (acts, _) = ActivationStore.Extract(m, Hook, contexts);
        Assert.Equal(64 * settings.Contexts.ContextSize, acts.Rows);
        double ev = Reconstruction.ExplainedVariance(acts, result.Sae.Reconstruct(acts));
        Assert.True(ev > 0.8, $"held-out explained variance {ev:F4}");

        var reloaded = SaeFiles.Load(outDir, Compute.All);
        Assert.Equal("topk", reloaded.Config.Architecture);
        Assert.Equal(result.Sae.Reconstruct(acts).Span.ToArray(), reloaded.Reconstruct(acts).Span.ToArray());
        Assert.Equal(result.Sae.Encode(acts).Span.ToArray(), reloaded.Encode(acts).Span.ToArray());

        var cfgMeta = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "cfg.json")))!["metadata"]!;
        Assert.Equal(Hook, (string?)cfgMeta["hook_name"]);
        Assert.Equal("stories260K", (string?)cfgMeta["model_name"]);
        Assert.Equal(128, (int)cfgMeta["context_size"]!);
        Assert.True((bool)cfgMeta["prepend_bos"]!);
        Assert.Equal(Path.GetFullPath(train), (string?)cfgMeta["dataset_path"]);
        Assert.Equal(250 * 1024, (long)cfgMeta["training_tokens"]!);
    }

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void InterruptedStreamingRunResumesBitForBit()
    {
        var (train, _) = SplitCorpus();
        var settings = TopK(steps: 24, batch: 256) with { NBatchesInBuffer = 2, Contexts = new() { StoreBatchSizePrompts = 4 } };
        string model = SharedData.Path(Model);
        Sae Run(string dir, int? stopAt)
        {
            var data = TrainInputs.Open(settings, Compute.All, null, null, model, Hook, train, null);
            using var cts = new CancellationTokenSource();
            var mode = stopAt is null && TrainRun.HoldsRun(dir) ? RunFolderMode.Resume : RunFolderMode.New;
            var r = TrainRun.Execute(settings, data, dir, Compute.All, mode, cancel: cts.Token, progress: p => { if (p.Step == stopAt) cts.Cancel(); });
            Assert.Equal(stopAt is not null, r.Summary.Interrupted);
            return r.Sae;
        }
        var straight = Run(Path.Combine(_dir, "straight"), null);
        string resumedDir = Path.Combine(_dir, "resumed");
        Run(resumedDir, 11);
        var resumed = Run(resumedDir, null); // a fresh store replays the stream up to the checkpoint's position
        foreach (var (name, t) in straight.Params)
            Assert.True(t.Span.SequenceEqual(resumed.Params[name].Span), $"parameter {name} differs after resume");
    }

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void CliTrainsFromTheModelAndFromACache()
    {
        var (train, _) = SplitCorpus();
        string model = SharedData.Path(Model);
        string[] common = ["--architecture", "topk", "--d-sae", "64", "--k", "4", "--steps", "5", "--batch-size", "128",
            "--set", "context_size=32", "--set", "n_batches_in_buffer=2"];
        var streamed = CliRunner.Run(["train", "--model", model, "--hook", Hook, "--dataset", train, "--out", Path.Combine(_dir, "streamed"), .. common]);
        Assert.True(streamed.Code == 0, streamed.Err + streamed.Out);
        var meta = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "streamed", "cfg.json")))!["metadata"]!;
        Assert.Equal(32, (int)meta["context_size"]!);
        Assert.Equal(5 * 128, (long)meta["training_tokens"]!);

        string cache = Path.Combine(_dir, "cache");
        var cached = CliRunner.Run("cache", "--model", model, "--hook", Hook, "--dataset", train, "--tokens", "2048", "--context-size", "32", "--out", cache);
        Assert.True(cached.Code == 0, cached.Err + cached.Out);
        var fromCache = CliRunner.Run(["train", "--cache", cache, "--out", Path.Combine(_dir, "from-cache"), .. common]);
        Assert.True(fromCache.Code == 0, fromCache.Err + fromCache.Out);
        var cacheMeta = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "from-cache", "cfg.json")))!["metadata"]!;
        Assert.Equal(Hook, (string?)cacheMeta["hook_name"]);
        Assert.Equal(64, SaeFiles.Load(Path.Combine(_dir, "from-cache"), Compute.All).Config.DIn);
    }

    [Theory]
    [InlineData(new[] { "--activations", "a.npy", "--cache", "c" }, "exactly one activation source")]
    [InlineData(new string[0], "exactly one activation source")]
    [InlineData(new[] { "--model", "m" }, "--model needs --hook")]
    [InlineData(new[] { "--cache", "c", "--hook", "blocks.0.hook_resid_post" }, "go with --model")]
    public void SourceFlagMistakesAreClearErrors(string[] flags, string message)
    {
        var r = CliRunner.Run(["train", "--out", Path.Combine(_dir, "x"), .. flags]);
        Assert.Equal(1, r.Code);
        Assert.Contains(message, r.Err);
    }
}
