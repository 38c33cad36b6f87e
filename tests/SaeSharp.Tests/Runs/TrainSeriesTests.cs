using System.Text.Json.Nodes;
using SaeSharp.Runs;
using SaeSharp.Tests.Cli;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Runs;

/// <summary>`saesharp train --model A,B`: one SAE per model, same settings and seed, each in OUT/&lt;model folder name&gt;/ under the run-folder rules.</summary>
public sealed class TrainSeriesTests : IDisposable
{
    private const string Step0 = "models/tinystories-ckpts/step0";
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-series").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    [SharedFact(StoriesWeights, Step0 + "/model.safetensors", Corpus)]
    public void TrainsOneRunPerModelRefusesATakenFolderAndResumesBySkippingFinishedRuns()
    {
        string text = Path.Combine(_dir, "text.txt");
        File.WriteAllLines(text, File.ReadLines(SharedData.Path(Corpus)).Take(60));
        string a = SharedData.Path(Stories), b = SharedData.Path(Step0), outDir = Path.Combine(_dir, "saes");
        string[] args = ["train", "--model", $"{a},{b}", "--hook", "blocks.1.hook_resid_post", "--dataset", text, "--out", outDir,
            "--architecture", "topk", "--d-sae", "32", "--k", "4", "--steps", "3", "--batch-size", "64", "--seed", "5",
            "--set", "context_size=32", "--set", "n_batches_in_buffer=2", "--set", "store_batch_size_prompts=4"];
        var first = CliRunner.Run(args);
        Assert.True(first.Code == 0, first.Err + first.Out);
        foreach (var (name, model) in new[] { ("stories260K", a), ("step0", b) })
        {
            var settings = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, name, TrainRun.SettingsFile)))!;
            Assert.Equal(5UL, (ulong)settings["settings"]!["seed"]!);
            Assert.Equal(Path.GetFullPath(model), (string?)settings["data"]!["model"]);
            Assert.True(TrainSeries.Finished(Path.Combine(outDir, name)));
        }
        var taken = CliRunner.Run(args);
        Assert.Equal(1, taken.Code);
        Assert.Contains("already holds a training run", taken.Err);
        var resumed = CliRunner.Run(["train", "--resume", outDir, .. args[1..7]]);
        Assert.True(resumed.Code == 0, resumed.Err + resumed.Out);
        Assert.Equal(2, resumed.Out.Split('\n').Count(l => l.Contains("already trained, skipped")));
        var twice = CliRunner.Run(["train", "--model", $"{a},{a}", .. args[3..]]);
        Assert.Contains("share the folder name", twice.Err);
    }
}
