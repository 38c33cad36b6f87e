using SaeSharp.Cli;
using SaeSharp.Data;
using Xunit;

namespace SaeSharp.Tests.Data;

public class DataCommandTests
{
    [SharedFact(ActivationStoreTests.Model)]
    public void CacheAndExtractFromTokenFile()
    {
        var dir = Path.Combine(Path.GetTempPath(), "saesharp-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var tf = Path.Combine(dir, "tok.safetensors");
        TokenFile.Write(tf, ActivationStoreTests.Contexts(4, 9));
        var modelDir = Path.GetDirectoryName(SharedData.Path(ActivationStoreTests.Model))!;
        var o = new StringWriter(); var e = new StringWriter();
        int rc = Program.Run(new[] { "cache", "--model", modelDir, "--hook", "blocks.0.hook_resid_post", "--tokens-file", tf,
            "--tokens", "24", "--context-size", "8", "--out", Path.Combine(dir, "c"), "--dtype", "bf16", "--contexts-per-shard", "2" }, o, e);
        Assert.True(rc == 0, e.ToString());
        var man = ActivationCache.ReadManifest(Path.Combine(dir, "c"))!;
        Assert.Equal(24, man.Shards.Sum(s => s.Rows));
        Assert.Equal("BF16", man.DType);

        rc = Program.Run(new[] { "extract", "--model", modelDir, "--hook", "blocks.0.hook_resid_post", "--tokens-file", tf, "--out", Path.Combine(dir, "x") }, o, e);
        Assert.True(rc == 0, e.ToString());
        Assert.Equal(4, DocumentExtraction.Load(Path.Combine(dir, "x")).Acts.Rows);

        var err = new StringWriter();
        rc = Program.Run(new[] { "extract", "--model", modelDir, "--hook", "blocks.0.hook_resid_post", "--dataset", "d.txt", "--out", dir }, o, err);
        Assert.Equal(1, rc);
        Assert.Contains("d.txt", err.ToString()); // a missing dataset is named
    }
}
