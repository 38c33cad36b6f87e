using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Tests.Cli;
using SaeSharp.Tests.Training;
using Setting = SaeSharp.IO.ConfigBinder.Setting;

namespace SaeSharp.Tests.Runs;

/// <summary>Several SAEs trained on one stream in lock step (SAELens's MultiSAETrainingRunner).</summary>
public sealed class SweepRunTests : IDisposable
{
    private const string Model = "models/stories260K";
    private const string Corpus = "corpora/tinystories_validation_head.txt";
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-sweep").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TrainSettings Stream(long steps) => new()
    {
        Steps = steps, BatchSize = 128, Lr = 2e-3, Seed = 5, MetricsEvery = 4, CheckpointEvery = 4,
        Contexts = new() { ContextSize = 32, StoreBatchSizePrompts = 4 }, NBatchesInBuffer = 2,
        HookName = "blocks.1.hook_resid_post", DSae = 96, K = 4, L1Coefficient = 1,
    };

    // Four SAEs of two architectures families and three hooks of one forward, a transcoder among them.
    private static List<SweepMember> Four(TrainSettings shared) =>
    [
        new("topk4", shared with { Architecture = "topk" }),
        new("topk8-wide", shared with { Architecture = "topk", K = 8, DSae = 160, Seed = 9 }),
        new("standard-mlp", shared with { Architecture = "standard", HookName = "blocks.1.hook_mlp_out", Lr = 1e-3 }),
        new("jr-transcoder", shared with { Architecture = "jumprelu_transcoder", HookName = "blocks.1.ln2.hook_normalized", HookNameOut = "blocks.1.hook_mlp_out" }),
    ];

    private TrainData Open(TrainSettings shared, IEnumerable<SweepMember> saes, string train) =>
        TrainInputs.Open(shared, [.. saes.Select(m => m.Settings)], Compute.All, null, null, SharedData.Path(Model), train, null);

    private string TrainText()
    {
        string train = Path.Combine(_dir, "train.txt");
        if (!File.Exists(train)) File.WriteAllLines(train, File.ReadLines(SharedData.Path(Corpus)).Take(400));
        return train;
    }

    private static void AssertSameParameters(Sae expected, Sae actual, string name)
    {
        Assert.Equal(expected.Params.Names, actual.Params.Names);
        foreach (var (p, t) in expected.Params)
            Assert.True(t.Span.SequenceEqual(actual.Params[p].Span), $"{name}: parameter {p} differs from the SAE trained alone");
    }

    /// <summary>
    /// Each SAE of a sweep of four (two hooks, an SAE on the MLP output and a jumprelu transcoder from ln2 to it) ends bit for
    /// bit as the same SAE trained alone with the same seed on the same stream: the model runs once per batch for all of them.
    /// </summary>
    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void EachSaeOfASweepEqualsTheSameSaeTrainedAlone()
    {
        string train = TrainText();
        var shared = Stream(steps: 10);
        var saes = Four(shared);
        var data = Open(shared, saes, train);
        Assert.Equal(["blocks.1.hook_resid_post", "blocks.1.hook_mlp_out", "blocks.1.ln2.hook_normalized"], data.Layout.Hooks);
        var swept = SweepRun.Execute(shared, saes, data, Path.Combine(_dir, "sweep"), Compute.All);
        Assert.False(swept.Interrupted);
        Assert.True(SweepRun.HoldsSweep(Path.Combine(_dir, "sweep")));
        for (int i = 0; i < saes.Count; i++)
        {
            var m = saes[i];
            // Alone: a stream over its own hooks only, seeded as the sweep's stream, and its own seed for its initialisation.
            var alone = TrainRun.Execute(m.Settings, Open(shared, [m], train), Path.Combine(_dir, "alone-" + m.Name), Compute.All);
            AssertSameParameters(alone.Sae, swept.Results[i].Sae, m.Name);
            Assert.Equal(alone.Summary.TokensSeen, swept.Results[i].Summary.TokensSeen);
            var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "sweep", m.Name, "cfg.json")))!;
            Assert.Equal(m.Settings.HookName, (string?)cfg["metadata"]!["hook_name"]);
        }
        var tc = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "sweep", "jr-transcoder", "cfg.json")))!;
        Assert.Equal("jumprelu_transcoder", (string?)tc["architecture"]);
        Assert.Equal("blocks.1.hook_mlp_out", (string?)tc["metadata"]!["hook_name_out"]);
        Assert.Equal(64, (int)tc["d_out"]!);
    }

    /// <summary>A sweep killed after a checkpoint resumes as a whole and ends as the uninterrupted sweep; a resume with another set of SAEs is refused.</summary>
    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void AnInterruptedSweepResumesAsAWholeBitForBit()
    {
        string train = TrainText();
        var shared = Stream(steps: 10);
        var saes = Four(shared).Take(3).ToList();
        var straight = SweepRun.Execute(shared, saes, Open(shared, saes, train), Path.Combine(_dir, "straight"), Compute.All);
        string dir = Path.Combine(_dir, "resumed");
        using (var cts = new CancellationTokenSource())
        {
            var half = SweepRun.Execute(shared, saes, Open(shared, saes, train), dir, Compute.All, cancel: cts.Token, progress: p =>
            {
                Assert.Equal(saes.Select(m => m.Name), p.Saes!.Keys);
                if (p.Step == 6) cts.Cancel();
            });
            Assert.True(half.Interrupted);
        }
        // The last checkpoint of the first SAE is lost (a kill while writing it): the sweep resumes at the newest step all have.
        foreach (var cp in Directory.GetDirectories(Path.Combine(dir, saes[0].Name, "checkpoints"), "step_000000006")) Directory.Delete(cp, recursive: true);
        var e = Assert.Throws<InvalidOperationException>(() => SweepRun.Execute(shared, saes.Take(2).ToList(), Open(shared, saes, train), dir, Compute.All, RunFolderMode.Resume));
        Assert.Contains("SAEs:", e.Message);
        var lines = new StringWriter();
        var resumed = SweepRun.Execute(shared, saes, Open(shared, saes, train), dir, Compute.All, RunFolderMode.Resume, new TextReporter(lines));
        Assert.Contains("from step 4", lines.ToString());
        for (int i = 0; i < saes.Count; i++) AssertSameParameters(straight.Results[i].Sae, resumed.Results[i].Sae, saes[i].Name);
    }

    /// <summary>Over an in-memory array too, each SAE of a sweep equals the same SAE trained alone.</summary>
    [Fact]
    public void ASweepOverAnArrayEqualsItsSaesTrainedAlone()
    {
        var rows = SparseDictionaryData.Sample(1500, 3);
        var shared = new TrainSettings { Steps = 25, BatchSize = 64, Lr = 3e-3, Seed = 2, DSae = 32, K = 3, MetricsEvery = 5, CheckpointEvery = 0 };
        var saes = new List<SweepMember> { new("topk", shared with { Architecture = "topk" }), new("gated", shared with { Architecture = "gated", L1Coefficient = 0.5 }) };
        var swept = SweepRun.Execute(shared, saes, TrainData.FromArray(rows, shared.Seed), Path.Combine(_dir, "sweep"), new Compute(2));
        for (int i = 0; i < saes.Count; i++)
        {
            var alone = TrainRun.Execute(saes[i].Settings, TrainData.FromArray(rows, shared.Seed), Path.Combine(_dir, saes[i].Name), new Compute(2));
            AssertSameParameters(alone.Sae, swept.Results[i].Sae, saes[i].Name);
            Assert.Equal(alone.Final!.ExplainedVariance, swept.Results[i].Final!.ExplainedVariance);
        }
        var e = Assert.Throws<InvalidOperationException>(() => SweepRun.Execute(shared, saes, TrainData.FromArray(rows, shared.Seed), Path.Combine(_dir, "sweep"), new Compute(2)));
        Assert.Contains("already holds a sweep", e.Message);
    }

    [Fact]
    public void SettingsThatShapeTheStreamAreTheSweepsNotAnSaes()
    {
        Assert.Contains("batch_size", SweepRun.StreamKeys);
        Assert.Contains("context_size", SweepRun.StreamKeys); // a settings group's keys
        Assert.DoesNotContain("lr", SweepRun.StreamKeys);
        Assert.DoesNotContain("hook_name", SweepRun.StreamKeys);
        var shared = new TrainSettings { Steps = 10 };
        var members = SweepRun.Members(shared, [("a", [new("k", new Setting("4", "sweep.yaml line 5"))]), ("b", [new("architecture", new Setting("standard", "sweep.yaml line 7"))])]);
        Assert.Equal(4, members[0].Settings.K);
        Assert.Equal(10, members[1].Settings.Steps);
        var e = Assert.Throws<ArgumentException>(() => SweepRun.Members(shared, [("a", [new("batch_size", new Setting("64", "sweep.yaml line 9"))])]));
        Assert.Contains("sweep.yaml line 9", e.Message);
        Assert.Contains("top level", e.Message);
        // Records built in C# are checked too, and the SAEs must agree on drawing initialisation samples.
        e = Assert.Throws<ArgumentException>(() => SweepRun.Validate([new("a", shared), new("b", shared with { NBatchesInBuffer = 3 })]));
        Assert.Contains("n_batches_in_buffer", e.Message);
        e = Assert.Throws<ArgumentException>(() => SweepRun.Validate([new("a", shared), new("b", shared with { BDecInit = "mean" })]));
        Assert.Contains("b_dec_init", e.Message);
        Assert.Throws<ArgumentException>(() => SweepRun.Validate([new("a", shared), new("A", shared)]));
        Assert.Throws<ArgumentException>(() => SweepRun.Validate([new("../x", shared)]));
    }

    /// <summary>`saesharp train --sweep`: a YAML of shared settings and SAEs, one run folder each, one progress display; --resume continues it.</summary>
    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void TheCliTrainsASweepFromAYamlFile()
    {
        string train = TrainText();
        string yaml = Path.Combine(_dir, "sweep.yaml");
        File.WriteAllText(yaml, """
            # shared by every SAE
            steps: 6
            batch_size: 128
            context_size: 32
            n_batches_in_buffer: 2
            hook_name: blocks.1.hook_resid_post
            d_sae: 64
            checkpoint_every: 3
            saes:
              small:
                architecture: topk
                k: 4
              transcoder:
                architecture: transcoder
                hook_name: blocks.1.ln2.hook_normalized
                hook_name_out: blocks.1.hook_mlp_out
                l1_coefficient: 0.5
            """);
        string outDir = Path.Combine(_dir, "cli-sweep");
        var r = CliRunner.Run("train", "--sweep", yaml, "--model", SharedData.Path(Model), "--dataset", train, "--out", outDir, "--set", "metrics_every=3");
        Assert.True(r.Code == 0, r.Err + r.Out);
        Assert.Contains("sweep of 2 SAEs: step 3/6", r.Out);
        Assert.Contains("  transcoder: step 6/6", r.Out);
        Assert.Contains("small: trained 6 steps", r.Out);
        Assert.Equal("transcoder", SaeFiles.Load(Path.Combine(outDir, "transcoder"), Compute.All).Config.Architecture);
        Assert.Equal(4, SaeFiles.Load(Path.Combine(outDir, "small"), Compute.All).Config.K);
        // The finished sweep resumes from its folder alone (its settings are recorded) and is done.
        var again = CliRunner.Run("train", "--resume", outDir, "--model", SharedData.Path(Model), "--dataset", train);
        Assert.True(again.Code == 0, again.Err + again.Out);
        Assert.Contains("from step 6", again.Out);
        // A stream setting inside an SAE's entry names its line.
        File.WriteAllText(yaml, "steps: 6\nsaes:\n  a:\n    batch_size: 64\n");
        var bad = CliRunner.Run("train", "--sweep", yaml, "--model", SharedData.Path(Model), "--dataset", train, "--out", Path.Combine(_dir, "bad"));
        Assert.Equal(1, bad.Code);
        Assert.Contains("line 4", bad.Err);
    }
}
