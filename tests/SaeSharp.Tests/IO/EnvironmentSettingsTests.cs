using SaeSharp.IO;
using SaeSharp.Runs;

namespace SaeSharp.Tests.IO;

public sealed class EnvironmentSettingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-env").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string DotEnv(string text)
    {
        string path = Path.Combine(_dir, ".env");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ReadsTheLinesDrriksDotEnvHolds()
    {
        string path = DotEnv("""
            # credentials and settings
            HUGGINGFACE_HUB_TOKEN=hf_abc
            export HF_HOME=/data/hf   # the cache
            SAESHARP_TRAIN__LR="3e-4"
            QUOTED='a # not a comment'
            ESCAPED="line\nnext \"quoted\""

            EMPTY=
            """);
        var vars = EnvironmentSettings.ReadDotEnv(path).ToDictionary(v => v.Key, v => v.Value);
        Assert.Equal("hf_abc", vars["HUGGINGFACE_HUB_TOKEN"]);
        Assert.Equal("/data/hf", vars["HF_HOME"]);
        Assert.Equal("3e-4", vars["SAESHARP_TRAIN__LR"]);
        Assert.Equal("a # not a comment", vars["QUOTED"]);
        Assert.Equal("line\nnext \"quoted\"", vars["ESCAPED"]);
        Assert.Equal("", vars["EMPTY"]);
        Assert.Equal(4, EnvironmentSettings.ReadDotEnv(path).First(v => v.Key == "SAESHARP_TRAIN__LR").Line);
    }

    [Theory]
    [InlineData("JUST_A_NAME", "line 1: expected KEY=value")]
    [InlineData("1BAD=x", "line 1: '1BAD' is not a variable name")]
    [InlineData("A=\"open", "line 1: the value's quote")]
    [InlineData("# ok\nA='x' y", "line 2: unexpected text")]
    public void AMalformedLineNamesTheFileAndLine(string text, string message)
    {
        string path = DotEnv(text);
        var e = Assert.Throws<InvalidDataException>(() => EnvironmentSettings.ReadDotEnv(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(message, e.Message);
    }

    /// <summary>The process environment wins over the file (pydantic-settings' rule), and the settings keep the line they came from.</summary>
    [Fact]
    public void TheProcessEnvironmentWinsAndSettingsBindFromEither()
    {
        string path = DotEnv("SAESHARP_TRAIN__LR=0.01\nSAESHARP_TRAIN__K=12\nSAESHARP_TRAIN__D_SAE=oops\n");
        var env = EnvironmentSettings.Combine(new Dictionary<string, string> { ["SAESHARP_TRAIN__K"] = "7", ["SAESHARP_TRAIN__D_SAE"] = "64" },
            EnvironmentSettings.ReadDotEnv(path), path);
        var s = ConfigBinder.Bind(new TrainSettings(), ConfigBinder.FromEnvironment("train", env));
        Assert.Equal(0.01, s.Lr);
        Assert.Equal(7, s.K);
        Assert.Equal(64, s.DSae);
        var bad = EnvironmentSettings.Combine(new Dictionary<string, string>(), EnvironmentSettings.ReadDotEnv(path), path);
        var e = Assert.Throws<ArgumentException>(() => ConfigBinder.Bind(new TrainSettings(), ConfigBinder.FromEnvironment("train", bad)));
        Assert.Contains($"{path} line 3", e.Message);
        Assert.Null(bad.Get("HF_HOME"));
        Assert.Equal("12", bad.Get("SAESHARP_TRAIN__K"));
    }
}
