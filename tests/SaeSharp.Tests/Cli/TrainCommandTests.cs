using SaeSharp.Tests.Training;
using SaeSharp.IO;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Cli;

public class TrainCommandTests
{
    internal static string WriteActivations(string dir, int rows = 4096)
    {
        string path = Path.Combine(dir, "acts.npy");
        Npy.Write(path, SparseDictionaryData.Sample(rows, 11));
        return path;
    }

    private static string[] Args(string acts, string outDir, int steps) => new[]
    {
        "train", "--activations", acts, "--architecture", "batchtopk", "--d-sae", "32", "--k", "3", "--steps", steps.ToString(),
        "--batch-size", "64", "--lr", "0.002", "--out", outDir, "--set", "checkpoint_every=50", "--set", "metrics_every=10",
        "--set", "dead_feature_window=20",
    };

    [Fact]
    public void KilledRunResumesToTheSameWeightsBitForBit()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        string acts = WriteActivations(dir);
        const int Steps = 3000;

        var straight = CliRunner.Run(Args(acts, Path.Combine(dir, "straight"), Steps));
        Assert.True(straight.Code == 0, straight.Err + straight.Out);

        // Start the same run in a real process and kill it as soon as its first checkpoint is complete.
        string killedDir = Path.Combine(dir, "killed");
        using (var p = CliRunner.Start(Args(acts, killedDir, Steps)))
        {
            string latest = Path.Combine(killedDir, "checkpoints", "latest.json");
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (!File.Exists(latest) && !p.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(2);
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        Assert.False(File.Exists(Path.Combine(killedDir, "sae_weights.safetensors")), "the run finished before it could be killed");
        var resumed = CliRunner.Run("train", "--resume", killedDir, "--activations", acts);
        Assert.True(resumed.Code == 0, resumed.Err + resumed.Out);

        using var a = SafetensorsFile.Open(Path.Combine(dir, "straight", "sae_weights.safetensors"));
        using var b = SafetensorsFile.Open(Path.Combine(killedDir, "sae_weights.safetensors"));
        Assert.Equal(a.Names, b.Names);
        foreach (var name in a.Names) Assert.Equal(a.RawBytes(name), b.RawBytes(name));
        // batchtopk is exported for inference as jumprelu.
        Assert.Equal("jumprelu", SaeFiles.Load(killedDir, Compute.All).Config.Architecture);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void TyposAndBadValuesAreRejectedByName()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        string acts = WriteActivations(dir, rows: 64);
        var r = CliRunner.Run("train", "--activations", acts, "--out", Path.Combine(dir, "x"), "--set", "l1_coeficient=3");
        Assert.Equal(1, r.Code);
        Assert.Contains("l1_coeficient", r.Err);
        File.WriteAllText(Path.Combine(dir, "c.yaml"), "architecture: topk\nk: many\n");
        r = CliRunner.Run("train", "--activations", acts, "--config", Path.Combine(dir, "c.yaml"), "--out", Path.Combine(dir, "y"));
        Assert.Equal(1, r.Code);
        Assert.Contains("c.yaml line 2", r.Err);
        r = CliRunner.Run("train", "--activations", Path.Combine(dir, "missing.npy"), "--out", Path.Combine(dir, "z"));
        Assert.Equal(1, r.Code);
        Assert.Contains("missing.npy", r.Err);
        r = CliRunner.Run("train", "--activations", acts, "--out", Path.Combine(dir, "w"), "--steps", "5", "--set", "training_tokens=640");
        Assert.Equal(1, r.Code);
        Assert.Contains("training_tokens", r.Err);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void TrainingTokensSetTheStreamingBudget()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        string acts = WriteActivations(dir, rows: 256);
        var r = CliRunner.Run("train", "--activations", acts, "--architecture", "topk", "--d-sae", "32", "--k", "3", "--batch-size", "64",
            "--set", "training_tokens=700", "--out", Path.Combine(dir, "run"));
        Assert.True(r.Code == 0, r.Err + r.Out);
        var meta = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "run", "cfg.json")))!["metadata"]!;
        Assert.Equal(10, (long)meta["training_steps"]!); // ⌊700 / 64⌋
        Assert.Equal(640, (long)meta["training_tokens"]!);
        Directory.Delete(dir, true);
    }
}

public class TrainFitCommandTests
{
    private static string WriteActivations(string dir, int rows) => TrainCommandTests.WriteActivations(dir, rows);

    [Fact]
    public void EpochsTrainWithAValidationSplitAndWriteEpochsJsonl()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        string acts = WriteActivations(dir, 2000);
        string run = Path.Combine(dir, "fit");
        var r = CliRunner.Run("train", "--activations", acts, "--architecture", "standard", "--d-sae", "32", "--epochs", "4",
            "--validation-fraction", "0.2", "--batch-size", "64", "--lr", "0.003", "--l1-coefficient", "0.05", "--out", run,
            "--set", "unit_norm_decoder=true", "--set", "resample_interval=10", "--set", "resample_window=5", "--set", "metrics_every=5");
        Assert.True(r.Code == 0, r.Err + r.Out);
        // 1600 training rows in batches of 64: 25 steps an epoch.
        Assert.Contains("trained 100 steps", r.Out);
        Assert.Contains("epoch 4/4", r.Out);
        var epochs = SaeSharp.Training.FitRunner.ReadEpochs(Path.Combine(run, "epochs.jsonl"));
        Assert.Equal([1L, 2, 3, 4], epochs.Select(e => e.Epoch));
        Assert.Equal([25L, 50, 75, 100], epochs.Select(e => e.Step));
        Assert.True(epochs[^1].ValLoss < epochs[0].ValLoss, string.Join(" ", epochs.Select(e => e.ValLoss)));
        Assert.True(epochs[^1].TrainLoss < epochs[0].TrainLoss, string.Join(" ", epochs.Select(e => e.TrainLoss)));
        Assert.All(File.ReadLines(Path.Combine(run, "metrics.jsonl")), l => Assert.Contains("\"resampled_latents\"", l));
        var sae = SaeFiles.Load(run, Compute.All);
        Assert.Equal(4, sae.Config.Metadata["epochs"]!.GetValue<int>());
        Directory.Delete(dir, true);
    }

    [Fact]
    public void InterruptedFitRunResumesBitForBit()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var data = Npy.ReadFloat32(WriteActivations(dir, 1000));
        var settings = new SaeSharp.Runs.TrainSettings
        {
            Architecture = "standard", DSae = 32, Epochs = 3, ValidationFraction = 0.2, BatchSize = 64, Lr = 3e-3, L1Coefficient = 0.05,
            UnitNormDecoder = true, BDecInit = "median", NormalizeActivations = "expected_average_only_in", MetricsEvery = 5, CheckpointEvery = 0,
            ResampleInterval = 7, ResampleWindow = 3,
        };
        string straight = Path.Combine(dir, "straight"), resumed = Path.Combine(dir, "resumed");
        string npy = Path.Combine(dir, "acts.npy");
        var a = SaeSharp.Runs.TrainRun.Execute(settings, SaeSharp.Runs.TrainData.FromArray(data, settings.Seed, npy), straight, Compute.All);
        Assert.False(a.Summary.Interrupted);
        Assert.Equal(36, a.Summary.Steps); // ⌊800 / 64⌋ = 12 steps an epoch

        using var cancel = new CancellationTokenSource();
        var half = SaeSharp.Runs.TrainRun.Execute(settings, SaeSharp.Runs.TrainData.FromArray(data, settings.Seed, npy), resumed, Compute.All,
            cancel: cancel.Token, progress: p => { if (p.Step == 19) cancel.Cancel(); });
        Assert.True(half.Summary.Interrupted);
        var r = CliRunner.Run("train", "--resume", resumed, "--activations", Path.Combine(dir, "acts.npy"));
        Assert.True(r.Code == 0, r.Err + r.Out);

        using var x = SafetensorsFile.Open(Path.Combine(straight, "sae_weights.safetensors"));
        using var y = SafetensorsFile.Open(Path.Combine(resumed, "sae_weights.safetensors"));
        foreach (var name in x.Names) Assert.Equal(x.RawBytes(name), y.RawBytes(name));
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "epochs.jsonl")), File.ReadAllLines(Path.Combine(resumed, "epochs.jsonl")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void FitAndResampleSettingsAreValidatedByName()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        string acts = WriteActivations(dir, 200);
        (string[] Args, string[] Expected)[] cases =
        [
            (["--epochs", "2", "--steps", "100"], ["epochs", "steps", "mutually exclusive"]),
            (["--epochs", "-1"], ["epochs"]),
            (["--epochs", "2", "--validation-fraction", "1.5"], ["validation_fraction"]),
            (["--epochs", "2", "--batch-size", "4096"], ["batch_size"]),
            (["--validation-fraction", "0.2"], ["validation_fraction", "epochs"]),
            (["--set", "resample_interval=-3"], ["resample_interval"]),
            (["--set", "resample_window=0", "--set", "resample_interval=5"], ["resample_window"]),
            (["--set", "resample_samples=0"], ["resample_samples"]),
        ];
        int i = 0;
        foreach (var (extra, expected) in cases)
        {
            var r = CliRunner.Run(["train", "--activations", acts, "--out", Path.Combine(dir, $"run{i++}"), .. extra]);
            Assert.True(r.Code == 1, $"{string.Join(" ", extra)}: exit {r.Code}\n{r.Out}\n{r.Err}");
            foreach (var word in expected) Assert.Contains(word, r.Err);
        }
        Directory.Delete(dir, true);
    }
}

public class SaeInfoCommandTests
{
    [Fact]
    public void InfoReportsSizesNormsAndDensityOfATrainedSae()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var rng = new SaeSharp.Tensors.Rng(2);
        var acts = new SaeSharp.Tensors.Tensor(512, 8);
        rng.FillNormal(acts.Span);
        SaeSharp.IO.Npy.Write(Path.Combine(dir, "a.npy"), acts);
        // 40 steps with a 20-step density window: the run ends exactly on a window boundary.
        var r = CliRunner.Run("train", "--activations", Path.Combine(dir, "a.npy"), "--architecture", "topk", "--d-sae", "16", "--k", "2",
            "--steps", "40", "--batch-size", "32", "--out", Path.Combine(dir, "run"), "--set", "feature_sampling_window=20");
        Assert.True(r.Code == 0, r.Err + r.Out);
        var info = CliRunner.Run("sae", "info", Path.Combine(dir, "run"));
        Assert.True(info.Code == 0, info.Err);
        Assert.Contains("architecture: topk", info.Out);
        Assert.Contains("d_in: 8   d_sae: 16   k: 2", info.Out);
        Assert.Contains("W_dec      [16, 8]", info.Out);
        Assert.Contains("decoder row norms:", info.Out);
        Assert.DoesNotContain("no firing 16", info.Out); // density comes from the last complete window, not an empty one
        // Latents dead in the last window and latents that never fired are told apart, each with its meaning.
        var meta = SaeFiles.Load(Path.Combine(dir, "run"), Compute.All).Config.Metadata;
        Assert.Contains($"training run: {meta["dead_latents"]} latents did not fire in the last 1000 steps; {meta["never_fired_latents"]} never fired over the whole run", info.Out);
        var missing = CliRunner.Run("sae", "info", Path.Combine(dir, "nothing"));
        Assert.Equal(1, missing.Code);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void MatryoshkaWithLayerNormTrainsExportsAsJumpReluAndShowsInInfo()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var rng = new SaeSharp.Tensors.Rng(3);
        var acts = new SaeSharp.Tensors.Tensor(512, 8);
        rng.FillNormal(acts.Span);
        SaeSharp.IO.Npy.Write(Path.Combine(dir, "a.npy"), acts);
        var r = CliRunner.Run("train", "--activations", Path.Combine(dir, "a.npy"), "--architecture", "matryoshka_batchtopk", "--d-sae", "16",
            "--k", "2", "--steps", "40", "--batch-size", "32", "--out", Path.Combine(dir, "run"), "--set", "matryoshka_widths=4,8,16",
            "--set", "normalize_activations=layer_norm");
        Assert.True(r.Code == 0, r.Err + r.Out);
        var sae = SaeFiles.Load(Path.Combine(dir, "run"), Compute.All);
        Assert.Equal("jumprelu", sae.Config.Architecture);
        Assert.Equal("layer_norm", sae.Config.NormalizeActivations);
        var info = CliRunner.Run("sae", "info", Path.Combine(dir, "run"));
        Assert.True(info.Code == 0, info.Err);
        Assert.Contains("normalize_activations: layer_norm", info.Out);
        var bad = CliRunner.Run("train", "--activations", Path.Combine(dir, "a.npy"), "--architecture", "matryoshka_batchtopk", "--d-sae", "16",
            "--k", "2", "--steps", "4", "--out", Path.Combine(dir, "bad"), "--set", "matryoshka_widths=4,8");
        Assert.Equal(1, bad.Code);
        Assert.Contains("matryoshka_widths", bad.Err);
        Directory.Delete(dir, true);
    }
}
