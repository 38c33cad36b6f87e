using System.Text.Json;
using static SaeSharp.Tests.Models.ReferenceModelTests;

namespace SaeSharp.Tests.Models;

public class GenerateCommandTests
{
    [SharedFact(StoriesBin, Greedy)]
    public void GreedyGenerateCommandPrintsReferenceIds()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(SharedData.Path(Greedy)));
        var expected = doc.RootElement.GetProperty("new_tokens").EnumerateArray().Select(e => e.GetInt32()).Take(20);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = SaeSharp.Cli.Program.Run(["generate", "--model", SharedData.Path(StoriesBin), "--prompt-ids", "1 403 407 261 378",
            "--max-tokens", "20", "--temperature", "0"], stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        Assert.Equal(string.Join(" ", expected), stdout.ToString().Trim());
    }

    [SharedFact(StoriesBin)]
    public void BadPromptIdsGiveOneErrorLine()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = SaeSharp.Cli.Program.Run(["generate", "--model", SharedData.Path(StoriesBin), "--prompt-ids", "1 x 3"], stdout, stderr);
        Assert.Equal(1, rc);
        Assert.Contains("'x'", stderr.ToString());
    }

    private const string RunCSample = "models/stories260K/reference/runc/sample_t1_p0.9_s133742_n256.txt";
    private const string RunCGreedy = "models/stories260K/reference/runc/greedy_once_upon_a_time_n64.txt";

    [Fact]
    public void MissingModelIsNamedBeforeAnyTokenizerIsLookedFor()
    {
        string missing = Path.Combine(Path.GetTempPath(), "saesharp-no-model-" + Guid.NewGuid().ToString("N"));
        var r = Cli.CliRunner.Run("generate", "--model", missing, "--prompt", "hi");
        Assert.Equal(1, r.Code);
        Assert.Contains(missing, r.Err);
        Assert.DoesNotContain("tokenizer", r.Err);
    }

    [SharedTheory(StoriesBin, StoriesHf)]
    [InlineData("stories260K.bin")]
    [InlineData("")]
    public void FirstGeneratedTokenKeepsItsLeadingSpace(string file)
    {
        // Greedy after "Once upon a" is " time": decoded on its own it lost its space ("Once upon atime").
        string model = Path.Combine(Path.GetDirectoryName(SharedData.Path(StoriesBin))!, file);
        var r = Cli.CliRunner.Run("generate", "--model", model, "--prompt", "Once upon a", "--max-tokens", "12");
        Assert.True(r.Code == 0, r.Err);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", r.Out);
    }

    [SharedFact(StoriesBin, RunCSample, RunCGreedy)]
    public void Llama2cSamplerReproducesRunC()
    {
        // run.c -n N runs N positions: from BOS alone it samples N tokens (a prompt of P tokens leaves N - P + 1).
        // Every runc/*.txt ends with one newline more than run.c's closing printf("\n").
        static string Stdout(string file) => File.ReadAllText(SharedData.Path(file))[..^1];
        var r = Cli.CliRunner.Run("generate", "--model", SharedData.Path(StoriesBin), "--prompt", "", "--sampler", "llama2c",
            "--temperature", "1", "--top-p", "0.9", "--seed", "133742", "--max-tokens", "256");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(Stdout(RunCSample), r.Out);
        // -t 0 is argmax with either sampler: -n 64 -i "Once upon a time" (5 prompt tokens).
        r = Cli.CliRunner.Run("generate", "--model", SharedData.Path(StoriesBin), "--prompt", "Once upon a time", "--sampler", "llama2c",
            "--temperature", "0", "--max-tokens", "60");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(Stdout(RunCGreedy), r.Out);
    }
}
