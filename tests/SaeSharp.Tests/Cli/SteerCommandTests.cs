using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SaeSharp.Tests.Cli;

/// <summary>
/// `saesharp features` and `saesharp steer` end to end on stories260K with an SAE trained by `saesharp train` on
/// TinyStories text, and the command line's errors.
/// </summary>
public sealed class SteerCommandTests : IDisposable
{
    private const string Model = "models/stories260K";
    private const string Corpus = "corpora/tinystories_validation_head.txt";
    private const string Prompt = "Once upon a time, there was a little girl named Lily.";
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-steer-cli").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private string TrainSae()
    {
        string data = Path.Combine(_dir, "stories.txt");
        File.WriteAllLines(data, File.ReadLines(SharedData.Path(Corpus)).Take(800));
        string sae = Path.Combine(_dir, "sae");
        // 60 steps of 512 rows (small buffers so the stream starts at once) reach an explained variance of about 0.85.
        var r = CliRunner.Run("train", "--model", SharedData.Path(Model), "--hook", "blocks.2.hook_resid_post", "--dataset", data,
            "--architecture", "topk", "--d-sae", "512", "--k", "16", "--steps", "60", "--batch-size", "512", "--lr", "3e-3",
            "--set", "checkpoint_every=0", "--set", "n_batches_in_buffer=4", "--set", "store_batch_size_prompts=8", "--out", sae);
        Assert.True(r.Code == 0, r.Err + r.Out);
        var meta = JsonNode.Parse(File.ReadAllText(Path.Combine(sae, "cfg.json")))!["metadata"]!;
        Assert.True((double)meta["final_explained_variance"]! > 0.7, $"the SAE explains {meta["final_explained_variance"]} of the variance");
        return sae;
    }

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json", Corpus)]
    public void FeaturesListsAPromptsTopLatentsAndSteeringWithAStrongOneChangesTheContinuation()
    {
        string sae = TrainSae();
        var features = CliRunner.Run("features", "--model", SharedData.Path(Model), "--sae", sae, "--prompt", Prompt, "--top-k", "5");
        Assert.True(features.Code == 0, features.Err + features.Out);
        var rows = features.Out.Split('\n').Skip(2).Where(l => Regex.IsMatch(l, @"^\s*\d+\s")).ToList();
        Assert.Equal(5, rows.Count);
        int top = int.Parse(rows[0].Trim().Split(' ')[0], CultureInfo.InvariantCulture);

        string outDir = Path.Combine(_dir, "analysis");
        var steer = CliRunner.Run("steer", "--model", SharedData.Path(Model), "--sae", sae, "--prompt", Prompt, "--feature", $"{top}=1",
            "--strengths", "0,30", "--normalize", "--max-tokens", "30", "--out", outDir);
        Assert.True(steer.Code == 0, steer.Err + steer.Out);
        var json = JsonNode.Parse(File.ReadAllText(Directory.GetFiles(outDir, "*.json").Single()))!;
        string baseline = (string)json["results"]!["baseline"]!, steered = (string)json["results"]!["strength_30.0"]!;
        Assert.StartsWith(Prompt, baseline);
        Assert.StartsWith(Prompt, steered);
        Assert.NotEqual(baseline[Prompt.Length..], steered[Prompt.Length..]);
        Assert.True((double)json["runs"]![1]!["mean_kl"]! > 0.1, $"mean KL {json["runs"]![1]!["mean_kl"]}");
        Assert.Equal(0, (double)json["runs"]![0]!["mean_kl"]!);
        Assert.Contains($"--- strength_30.0 ---\n{steered}\n", File.ReadAllText(Directory.GetFiles(outDir, "*.txt").Single()));
        Assert.Contains(steered, steer.Out);

        // The saved JSON runs again to the same texts.
        var rerun = CliRunner.Run("steer", "--rerun", Directory.GetFiles(outDir, "*.json").Single(), "--no-save");
        Assert.True(rerun.Code == 0, rerun.Err + rerun.Out);
        Assert.Contains(steered, rerun.Out);
        Assert.Single(Directory.GetFiles(outDir, "*.json"));
    }

    [Theory]
    [InlineData(new[] { "--feature", "x1" }, "error: features: 'x1': 'x1' is not a latent index")]
    [InlineData(new[] { "--feature", "3=Infinity" }, "the strength must be finite")]
    [InlineData(new[] { "--feature", "3", "--strengths", "0,two" }, "strengths: 'two' is not a finite number")]
    [InlineData(new[] { "--feature", "3", "--mode", "sideways" }, "setting 'mode' = 'sideways' is not a valid value (one of add, clamp, ablate)")]
    [InlineData(new[] { "--feature", "3", "--positions", "middle" }, "one of all, prompt, generated")]
    [InlineData(new string[0], "give at least one latent")]
    public void BadSteeringInputIsOneErrorLine(string[] args, string message)
    {
        var (code, _, err) = CliRunner.Run(["steer", "--model", "m", "--sae", "s", "--prompt", "p", "--no-save", .. args]);
        Assert.Equal(1, code);
        Assert.Contains(message, err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void RerunTakesEverythingFromTheSavedFile()
    {
        var (code, _, err) = CliRunner.Run("steer", "--rerun", "a.json", "--model", "m");
        Assert.Equal(1, code);
        Assert.Contains("leave out --model, --sae and --prompt", err);
        Assert.Contains("--model is required", CliRunner.Run("steer", "--feature", "3").Err);
    }
}
