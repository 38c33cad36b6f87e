using SaeSharp.IO;

namespace SaeSharp.Tests.IO;

public class JsonConfigTests
{
    public enum Arch { Standard, TopK, JumpRelu }

    public sealed record Meta(string ModelName, string HookName);

    public sealed record Cfg(Arch Architecture, int DIn, int DSae, bool ApplyBDecToInput = true, int? K = null, Meta? Metadata = null);

    [Fact]
    public void ReadsSnakeCaseIntoRecordWithDefaults()
    {
        var cfg = JsonConfig.Parse<Cfg>("""
            // comments and trailing commas are allowed
            {"architecture": "top_k", "d_in": 64, "d_sae": 256, "k": 8,
             "metadata": {"model_name": "gpt2", "hook_name": "blocks.0.hook_resid_pre"},}
            """, "cfg.json");
        Assert.Equal(new Cfg(Arch.TopK, 64, 256, true, 8, new Meta("gpt2", "blocks.0.hook_resid_pre")), cfg);
    }

    [Fact]
    public void UnknownKeyIsAnErrorNamingFileAndKey()
    {
        using var dir = new TempDir();
        string path = dir.File("cfg.json");
        File.WriteAllText(path, """{"architecture": "standard", "d_in": 4, "d_sae": 8, "d_sea": 9}""");
        var ex = Assert.Throws<InvalidDataException>(() => JsonConfig.Read<Cfg>(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("d_sea", ex.Message);
        // Files from other tools can opt out.
        Assert.Equal(8, JsonConfig.Read<Cfg>(path, allowUnknownKeys: true).DSae);
    }

    [Theory]
    [InlineData("""{"architecture": "standard", "d_in": "four", "d_sae": 8}""", "$.d_in")]
    [InlineData("""{"architecture": "bogus", "d_in": 4, "d_sae": 8}""", "$.architecture")]
    [InlineData("""{"architecture": "standard", "d_in": 4, "d_sae": 8, "metadata": {"model_name": null, "hook_name": "h"}}""", "model_name")]
    [InlineData("""{"architecture": "standard", "d_in": 4""", "line 1")]
    [InlineData("""{"architecture": "standard", "d_sae": 8}""", "d_in")]
    [InlineData("null", "JSON null")]
    public void BadValuesNameTheLocation(string json, string where)
    {
        var ex = Assert.Throws<InvalidDataException>(() => JsonConfig.Parse<Cfg>(json, "my/cfg.json"));
        Assert.StartsWith("my/cfg.json: ", ex.Message);
        Assert.Contains(where, ex.Message);
    }

    [Fact]
    public void WriteRoundTripsAtomically()
    {
        using var dir = new TempDir();
        string path = dir.File("out/cfg.json");
        var cfg = new Cfg(Arch.JumpRelu, 16, 32, false, null, new Meta("m", "h"));
        JsonConfig.Write(path, cfg);
        string text = File.ReadAllText(path);
        Assert.Contains("\"d_sae\": 32", text);
        Assert.Contains("\"jump_relu\"", text);
        Assert.Equal(cfg, JsonConfig.Read<Cfg>(path));
        Assert.False(File.Exists(path + ".tmp"));
    }
}
