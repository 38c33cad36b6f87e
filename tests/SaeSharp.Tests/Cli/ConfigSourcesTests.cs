using SaeSharp.Tests.IO;

namespace SaeSharp.Tests.Cli;

/// <summary>Settings from YAML: a value that binds but is not valid is reported with the file and line it came from.</summary>
public class ConfigSourcesTests
{
    [Theory]
    [InlineData("b_dec_init: foo", "b_dec_init")]
    [InlineData("architecture: topkk", "architecture")]
    [InlineData("d_sae: -5", "d_sae")]
    [InlineData("context_size: 1", "context_size")]
    public void InvalidValuesNameTheYamlLine(string line, string key)
    {
        using var dir = new TempDir();
        string acts = TrainCommandTests.WriteActivations(dir.Root, rows: 64);
        string yaml = dir.File("run.yaml");
        File.WriteAllText(yaml, $"# settings\nbatch_size: 16\n{line}\nsteps: 2\n");
        var r = CliRunner.Run("train", "--activations", acts, "--config", yaml, "--out", dir.File("run"));
        Assert.Equal(1, r.Code);
        Assert.Contains($"{yaml} line 3", r.Err);
        Assert.Contains(key, r.Err);
    }

    [Fact]
    public void AFlagOverridingTheFileIsTheSourceNamed()
    {
        using var dir = new TempDir();
        string acts = TrainCommandTests.WriteActivations(dir.Root, rows: 64);
        string yaml = dir.File("run.yaml");
        File.WriteAllText(yaml, "b_dec_init: mean\n");
        var r = CliRunner.Run("train", "--activations", acts, "--config", yaml, "--set", "b_dec_init=bogus", "--out", dir.File("run"));
        Assert.Equal(1, r.Code);
        Assert.Contains("--set b_dec_init=bogus", r.Err);
        Assert.DoesNotContain("line 1", r.Err);
    }
}
