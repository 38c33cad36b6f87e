using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Tests.Cli;
using SaeSharp.Tests.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Runs;

/// <summary>The run-folder rules of a training run and the final metrics it reports.</summary>
public sealed class TrainRunTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-trainrun").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TrainSettings Small(long steps = 30) => new()
    {
        Architecture = "topk", DSae = 32, K = 3, Steps = steps, BatchSize = 64, Lr = 3e-3, MetricsEvery = 5, CheckpointEvery = 10, Seed = 3,
    };

    private static TrainData Data(int rows = 2000, ulong seed = 11, string? path = null) => TrainData.FromArray(SparseDictionaryData.Sample(rows, seed), 3, path);

    private sealed class Lines : IRunReporter
    {
        public readonly List<string> All = [];
        public T Track<T>(string title, long logEvery, Func<Action<SaeSharp.Training.TrainProgress>, T> work) => work(_ => { });
        public void WriteLine(string line) => All.Add(line);
    }

    [Fact]
    public void AFolderHoldingARunIsRefusedUnlessResumedOrOverwritten()
    {
        string run = Path.Combine(_dir, "run");
        var first = TrainRun.Execute(Small(), Data(), run, new Compute(2));
        var e = Assert.Throws<InvalidOperationException>(() => TrainRun.Execute(Small(), Data(), run, new Compute(2)));
        Assert.Contains(run, e.Message);
        Assert.Contains("--resume", e.Message);
        Assert.Contains("--overwrite", e.Message);

        // Overwrite starts afresh: the same settings give the same SAE as the first run, and stale files are gone.
        File.WriteAllText(Path.Combine(run, "epochs.jsonl"), "stale");
        var lines = new Lines();
        var again = TrainRun.Execute(Small(), Data(), run, new Compute(2), RunFolderMode.Overwrite, lines);
        Assert.False(File.Exists(Path.Combine(run, "epochs.jsonl")));
        Assert.Contains(lines.All, l => l.Contains("overwriting"));
        Assert.Equal(first.Sae.WDec.ToArray(), again.Sae.WDec.ToArray());
        Assert.Equal(30, File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(l => (long)JsonNode.Parse(l)!["step"]!).Max());

        // An empty folder or one with unrelated files is not a run.
        string other = Path.Combine(_dir, "other");
        Directory.CreateDirectory(other);
        File.WriteAllText(Path.Combine(other, "notes.txt"), "mine");
        TrainRun.Execute(Small(), Data(), other, new Compute(2));
        Assert.True(File.Exists(Path.Combine(other, "notes.txt")));
    }

    [Fact]
    public void AResumeWithOtherSettingsOrDataRefusesAndListsTheDifferences()
    {
        string run = Path.Combine(_dir, "run");
        string acts = Path.Combine(_dir, "acts.npy");
        using var cancel = new CancellationTokenSource();
        var half = TrainRun.Execute(Small(), Data(path: acts), run, new Compute(2), cancel: cancel.Token, progress: p => { if (p.Step == 15) cancel.Cancel(); });
        Assert.True(half.Summary.Interrupted);

        var e = Assert.Throws<InvalidOperationException>(() =>
            TrainRun.Execute(Small() with { Lr = 1e-3, K = 4 }, Data(path: acts), run, new Compute(2), RunFolderMode.Resume));
        Assert.Contains("setting lr: 0.003 → 0.001", e.Message);
        Assert.Contains("setting k: 3 → 4", e.Message);
        e = Assert.Throws<InvalidOperationException>(() =>
            TrainRun.Execute(Small() with { Architecture = "batchtopk" }, Data(path: acts), run, new Compute(2), RunFolderMode.Resume));
        Assert.Contains("setting architecture: \"topk\" → \"batchtopk\"", e.Message);
        e = Assert.Throws<InvalidOperationException>(() =>
            TrainRun.Execute(Small(), Data(path: Path.Combine(_dir, "other.npy")), run, new Compute(2), RunFolderMode.Resume));
        Assert.Contains("data path:", e.Message);
        Assert.Contains("other.npy", e.Message);

        // Unchanged, the resume continues from the checkpoint the interruption wrote.
        var lines = new Lines();
        var done = TrainRun.Execute(Small(), Data(path: acts), run, new Compute(2), RunFolderMode.Resume, lines);
        Assert.Contains(lines.All, l => l.Contains("resuming") && l.Contains("from step 15")); // the interruption's checkpoint
        Assert.Equal(30, done.Summary.Steps);
        e = Assert.Throws<InvalidOperationException>(() => TrainRun.Execute(Small(), Data(), Path.Combine(_dir, "none"), new Compute(2), RunFolderMode.Resume));
        Assert.Contains("holds no training run", e.Message);
    }

    [Fact]
    public void FinalMetricsDescribeTheSavedWeightsOnTheRowsTheyName()
    {
        string run = Path.Combine(_dir, "run");
        var r = TrainRun.Execute(Small() with { Architecture = "batchtopk" }, Data(), run, new Compute(2));
        var saved = SaeFiles.Load(run, new Compute(2));
        Assert.Equal("jumprelu", saved.Config.Architecture); // what the run reports must describe this exported SAE
        var meta = saved.Config.Metadata;
        Assert.Equal("the last 1,920 training rows", (string?)meta["final_metrics_on"]); // 30 steps × 64 rows
        Assert.Equal(r.Final!.L0, (double)meta["final_l0"]!);
        Assert.Equal(r.Final.ExplainedVariance, (double)meta["final_explained_variance"]!);
        Assert.Equal(1000, (long)meta["dead_latents_window_steps"]!);
        Assert.True(r.Final.L0 > 0);
        Assert.Contains("no firing in the last 1,000 steps", TrainRun.DescribeResult(r));
    }

    [Fact]
    public void ResamplingStopsSoEveryReinitialisedLatentIsTrainedAndFinalL0MatchesTheSavedSae()
    {
        // A run whose last step would be a resampling step (interval 10, 80 steps): resampling stops at step 70. Top-1 over
        // 48 latents with 8 rows a step fires at most 32 latents in a 4-step window, so every resampling has dead latents.
        string run = Path.Combine(_dir, "run");
        var rows = SparseDictionaryData.Sample(640, 5);
        var s = new TrainSettings
        {
            Architecture = "topk", DSae = 48, K = 1, Steps = 80, BatchSize = 8, Lr = 3e-3, MetricsEvery = 1, CheckpointEvery = 0,
            ResampleInterval = 10, ResampleWindow = 4, Seed = 1,
        };
        Assert.Empty(s.Warnings(80));
        var r = TrainRun.Execute(s, TrainData.FromArray(rows, s.Seed), run, new Compute(2));
        var resampledAt = File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(m => (double)m["resampled_latents"]! > 0).Select(m => (long)m["step"]!).ToList();
        Assert.NotEmpty(resampledAt); // the test would prove nothing if no latent were resampled
        Assert.True(resampledAt.Max() <= 80 - 10, $"resampled at steps {string.Join(", ", resampledAt)}");

        // The reported final L0 is the saved SAE's L0 on the same rows: the ring keeps the 640 rows trained on, exactly
        // one shuffled pass over the array, so the means are the array's.
        var saved = SaeFiles.Load(run, new Compute(2));
        var measured = TrainRun.Measure(saved, rows, "the array");
        Assert.Equal(measured.L0, r.Final!.L0);
        Assert.Equal(measured.ExplainedVariance, r.Final.ExplainedVariance, 6);
        Assert.Equal("the last 640 training rows", r.Final.On);

        // A setting that would resample at the last step is warned about.
        var late = s with { ResampleStopStep = 80 };
        Assert.Contains(late.Warnings(80), w => w.Contains("step 80") && w.Contains("resample_interval"));
    }

    [Fact]
    public void ARunResumedAfterItsLastCheckpointStillMeasuresItsFinalMetrics()
    {
        string run = Path.Combine(_dir, "run");
        string acts = Path.Combine(_dir, "acts.npy");
        TrainRun.Execute(Small(), Data(path: acts), run, new Compute(2));
        // Killed after the checkpoint at the last step, before the SAE was saved.
        File.Delete(Path.Combine(run, SaeFiles.ConfigFile));
        File.Delete(Path.Combine(run, SaeFiles.WeightsFile));
        var r = TrainRun.Execute(Small(), Data(path: acts), run, new Compute(2), RunFolderMode.Resume);
        Assert.Equal(30, r.Summary.Steps);
        Assert.True(r.Final!.Rows > 0 && r.Final.L0 > 0 && double.IsFinite(r.Final.ExplainedVariance), r.Final.ToString());
        Assert.Contains("follow the last training step", r.Final.On);
        var meta = SaeFiles.Load(run, new Compute(2)).Config.Metadata;
        Assert.Equal(r.Final.L0, (double)meta["final_l0"]!);
    }

    [Fact]
    public void ARunWhoseDataRunsOutSaysSoAndStillMeasuresItsFinalMetrics()
    {
        var rows = SparseDictionaryData.Sample(640, 2);
        var data = new TrainData(new InMemoryActivationSource(rows, 1, endless: false), new JsonObject { ["kind"] = "once" }, []);
        var lines = new Lines();
        var r = TrainRun.Execute(Small(steps: 100), data, Path.Combine(_dir, "run"), new Compute(2), reporter: lines);
        Assert.Equal(10, r.Summary.Steps);
        Assert.True(r.Summary.EndedEarly);
        Assert.Contains(lines.All, l => l.Contains("ran out after 10 of 100 steps") && l.Contains("640 rows"));
        Assert.True(r.Final!.L0 > 0);
        var meta = SaeFiles.Load(Path.Combine(_dir, "run"), new Compute(2)).Config.Metadata;
        Assert.Contains("ran out after 10 of 100 steps", (string?)meta["ended_early"]);
    }

    [Fact]
    public void StepsOverAnArraySayHowManyPassesTheyMake()
    {
        var lines = new Lines();
        TrainRun.Execute(Small(steps: 50), Data(rows: 1600), Path.Combine(_dir, "run"), new Compute(2), reporter: lines);
        Assert.Contains("50 steps of 64 rows = 2 passes over the 1,600 rows", lines.All);
    }

    [Fact]
    public void EpochLinesReportTrainAndValidationMseOnOneScale()
    {
        var s = new TrainSettings
        {
            Architecture = "standard", DSae = 32, Epochs = 2, BatchSize = 64, Lr = 3e-3, L1Coefficient = 0.05, MetricsEvery = 5, CheckpointEvery = 0,
        };
        var r = TrainRun.Execute(s, Data(rows: 1000), Path.Combine(_dir, "run"), new Compute(2));
        var e = r.Summary.LastEpoch!;
        string line = TrainRun.DescribeEpoch(e);
        Assert.Contains($"train MSE {e.TrainMse:G5}", line);
        Assert.Contains($"val MSE {e.ValLoss:G5}", line);
        // Both are per-element means of one SAE on rows of one distribution: the same order of magnitude.
        Assert.InRange(e.ValLoss / e.TrainMse, 0.3, 3);
        Assert.Equal("the 100 validation rows", r.Final!.On);
    }

    [Fact]
    public void TheCliRefusesARunFolderTwiceAndOverwritesOnRequest()
    {
        string acts = TrainCommandTests.WriteActivations(_dir, 1024);
        string run = Path.Combine(_dir, "cli-run");
        string[] args = ["train", "--activations", acts, "--architecture", "topk", "--d-sae", "16", "--k", "2", "--steps", "5", "--batch-size", "64", "--out", run];
        var first = CliRunner.Run(args);
        Assert.True(first.Code == 0, first.Err + first.Out);
        Assert.Contains("5 steps of 64 rows = 0.31 passes over the 1,024 rows", first.Out);
        var second = CliRunner.Run(args);
        Assert.Equal(1, second.Code);
        Assert.Contains("already holds a training run", second.Err);
        var third = CliRunner.Run([.. args, "--overwrite"]);
        Assert.True(third.Code == 0, third.Err + third.Out);
    }
}
