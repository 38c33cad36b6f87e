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
        Architecture = "topk", DSae = 512, K = 8, Steps = steps, BatchSize = batch, Lr = 1e-3, Seed = 7, HookName = Hook,
        MetricsEvery = 10, CheckpointEvery = 0, Contexts = new() { StoreBatchSizePrompts = 16 }, NBatchesInBuffer = 8,
    };

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void TopKOnTinyStoriesExplainsHeldOutActivationsAndReloadsIdentically()
    {
        var (train, heldOut) = SplitCorpus();
        var settings = TopK(steps: 250, batch: 1024);
        string model = SharedData.Path(Model);
        var data = TrainInputs.Open(settings, Compute.All, null, null, model, train, null);
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

    private const string TranscoderIn = "blocks.1.ln2.hook_normalized", TranscoderOut = "blocks.1.hook_mlp_out";

    private static TrainSettings Transcoder(long steps, int batch) => new()
    {
        Architecture = "transcoder", DSae = 256, Steps = steps, BatchSize = batch, Lr = 2e-3, L1Coefficient = 0.1, Seed = 3,
        HookName = TranscoderIn, HookNameOut = TranscoderOut, MetricsEvery = 20, CheckpointEvery = 0,
        Contexts = new() { ContextSize = 64, StoreBatchSizePrompts = 8 }, NBatchesInBuffer = 4,
    };

    /// <summary>
    /// A transcoder from layer 1's ln2.hook_normalized to its hook_mlp_out, streamed from TinyStories: cfg.json reports the
    /// explained variance of its target (measured again here on held-out stories), and the folder is SAELens's transcoder
    /// layout (d_out, hook_name_out in metadata, W_dec [d_sae, d_out], b_dec [d_out]) that loads back to the same predictions.
    /// </summary>
    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void TranscoderPredictsTheMlpOutputAndRoundTripsThroughSaeLensLayout()
    {
        var (train, heldOut) = SplitCorpus();
        var settings = Transcoder(steps: 150, batch: 256);
        string model = SharedData.Path(Model);
        string outDir = Path.Combine(_dir, "transcoder");
        var result = TrainRun.Execute(settings, TrainInputs.Open(settings, Compute.All, null, null, model, train, null), outDir, Compute.All);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "cfg.json")))!;
        double reported = (double)cfg["metadata"]!["final_explained_variance"]!;
        Assert.True(reported > 0.5, $"reported explained variance of the MLP output {reported:F4}");
        Assert.Equal("transcoder", (string?)cfg["architecture"]);
        Assert.Equal(64, (int)cfg["d_out"]!);
        Assert.False((bool)cfg["apply_b_dec_to_input"]!);
        Assert.Equal(TranscoderIn, (string?)cfg["metadata"]!["hook_name"]);
        Assert.Equal(TranscoderOut, (string?)cfg["metadata"]!["hook_name_out"]);
        using (var weights = SaeSharp.IO.SafetensorsFile.Open(Path.Combine(outDir, SaeFiles.WeightsFile)))
        {
            Assert.Equal([256, 64], weights.Entry("W_dec").Shape);
            Assert.Equal([64], weights.Entry("b_dec").Shape);
            Assert.Equal([64, 256], weights.Entry("W_enc").Shape);
        }

        var m = HookedTransformer.Load(model, Compute.All);
        var tokenizer = SaeSharp.Text.Tokenizers.Load(model);
        var contexts = ModelInputs.Contexts(heldOut.Where(l => l.Length > 0).Select(l => tokenizer.Encode(l)), m.Config, settings.Contexts).Take(32).ToList();
        var (input, _) = ActivationStore.Extract(m, TranscoderIn, contexts);
        var (target, _) = ActivationStore.Extract(m, TranscoderOut, contexts);
        double heldOutEv = Reconstruction.ExplainedVariance(target, result.Sae.Reconstruct(input));
        Assert.True(heldOutEv > reported - 0.1, $"held-out explained variance {heldOutEv:F4}, reported {reported:F4}");
        var reloaded = SaeFiles.Load(outDir, Compute.All);
        Assert.Equal(result.Sae.Reconstruct(input).Span.ToArray(), reloaded.Reconstruct(input).Span.ToArray());
    }

    /// <summary>A transcoder's streamed run, killed and resumed, ends bit for bit as the uninterrupted one: its input and target rows are replayed together.</summary>
    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void InterruptedTranscoderRunResumesBitForBit()
    {
        var (train, _) = SplitCorpus();
        AssertResumedRunEqualsStraightOne(train, Transcoder(steps: 16, batch: 128) with { Architecture = "jumprelu_skip_transcoder", CheckpointEvery = 5 }, stopAt: 7);
    }

    /// <summary>`saesharp cache --target-hook` writes a paired cache; `train --cache` trains a transcoder on it (hooks from the cache).</summary>
    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void CliTrainsATranscoderFromThePairedCacheAndFromTheModel()
    {
        var (train, _) = SplitCorpus();
        string model = SharedData.Path(Model);
        string cache = Path.Combine(_dir, "paired");
        var cached = CliRunner.Run("cache", "--model", model, "--hook", TranscoderIn, "--target-hook", TranscoderOut, "--dataset", train,
            "--tokens", "2048", "--context-size", "32", "--out", cache);
        Assert.True(cached.Code == 0, cached.Err + cached.Out);
        Assert.Contains($"paired with {TranscoderOut} (d_out 64)", cached.Out);
        string[] common = ["--architecture", "skip_transcoder", "--d-sae", "64", "--steps", "5", "--batch-size", "128", "--l1-coefficient", "0.5"];
        var fromCache = CliRunner.Run(["train", "--cache", cache, "--out", Path.Combine(_dir, "tc-cache"), .. common]);
        Assert.True(fromCache.Code == 0, fromCache.Err + fromCache.Out);
        var meta = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "tc-cache", "cfg.json")))!["metadata"]!;
        Assert.Equal(TranscoderIn, (string?)meta["hook_name"]);
        Assert.Equal(TranscoderOut, (string?)meta["hook_name_out"]);
        var streamed = CliRunner.Run(["train", "--model", model, "--hook", TranscoderIn, "--target-hook", TranscoderOut, "--dataset", train,
            "--out", Path.Combine(_dir, "tc-model"), "--set", "context_size=32", "--set", "n_batches_in_buffer=2", .. common]);
        Assert.True(streamed.Code == 0, streamed.Err + streamed.Out);
        Assert.Equal(64, SaeFiles.Load(Path.Combine(_dir, "tc-model"), Compute.All).DOut);
        // A transcoder without its target hook says what to give.
        var missing = CliRunner.Run(["train", "--model", model, "--hook", TranscoderIn, "--dataset", train, "--out", Path.Combine(_dir, "no-target"), .. common]);
        Assert.Equal(1, missing.Code);
        Assert.Contains("--target-hook", missing.Err);
    }

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void InterruptedStreamingRunResumesBitForBit()
    {
        var (train, _) = SplitCorpus();
        AssertResumedRunEqualsStraightOne(train, TopK(steps: 24, batch: 256) with { NBatchesInBuffer = 2, Contexts = new() { StoreBatchSizePrompts = 4 } }, stopAt: 11);
    }

    /// <summary>A run stopped at <paramref name="stopAt"/> and resumed (a fresh store replays the stream up to the checkpoint's position) ends as the straight run.</summary>
    private void AssertResumedRunEqualsStraightOne(string train, TrainSettings settings, int stopAt)
    {
        string model = SharedData.Path(Model);
        Sae Run(string dir, int? stop)
        {
            using var cts = new CancellationTokenSource();
            var mode = stop is null && TrainRun.HoldsRun(dir) ? RunFolderMode.Resume : RunFolderMode.New;
            var r = TrainRun.Execute(settings, TrainInputs.Open(settings, Compute.All, null, null, model, train, null), dir, Compute.All, mode,
                cancel: cts.Token, progress: p => { if (p.Step == stop) cts.Cancel(); });
            Assert.Equal(stop is not null, r.Summary.Interrupted);
            return r.Sae;
        }
        var straight = Run(Path.Combine(_dir, "straight"), null);
        string resumedDir = Path.Combine(_dir, "resumed");
        Run(resumedDir, stopAt);
        var resumed = Run(resumedDir, null);
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
    [InlineData(new[] { "--cache", "c", "--dataset", "d.txt" }, "go with --model")]
    public void SourceFlagMistakesAreClearErrors(string[] flags, string message)
    {
        var r = CliRunner.Run(["train", "--out", Path.Combine(_dir, "x"), .. flags]);
        Assert.Equal(1, r.Code);
        Assert.Contains(message, r.Err);
    }
}
