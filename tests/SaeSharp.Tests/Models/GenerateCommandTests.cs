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
}
