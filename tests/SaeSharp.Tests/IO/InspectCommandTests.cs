using SaeSharp.Cli;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.IO;

public class InspectCommandTests
{
    private static (int Rc, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = Program.Run(args, o, e);
        return (rc, o.ToString(), e.ToString());
    }

    [Fact]
    public void ListsTensorsWithStats()
    {
        using var dir = new TempDir();
        string path = dir.File("sae.safetensors");
        new SafetensorsWriter()
            .Add("W_enc", Tensor.FromArray([1f, 2f, 3f, 6f], 2, 2))
            .Add("b_enc", new Tensor(3), DType.BF16)
            .AddMetadata("format", "pt")
            .Write(path);
        var (rc, output, err) = Run("inspect", path, "--stats");
        Assert.True(rc == 0, err);
        Assert.Contains("2 tensors in 1 file(s)", output);
        Assert.Contains("metadata format = pt", output);
        // mean 3, deviations -2 -1 0 3: variance 14/4 = 3.5, std 1.87083.
        Assert.Matches(@"W_enc\s+F32\s+\[2, 2\]\s+min 1\s+max 6\s+mean 3\s+std 1\.87083", output);
        Assert.Matches(@"b_enc\s+BF16\s+\[3\]", output);
    }

    [Fact]
    public void InspectsNpy()
    {
        using var dir = new TempDir();
        string path = dir.File("ids.npy");
        Npy.Write(path, new long[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var (rc, output, _) = Run("inspect", path);
        Assert.Equal(0, rc);
        Assert.Contains("<i8 [2, 3]", output);
    }

    [Fact]
    public void CorruptFileIsOneErrorLine()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var (rc, _, err) = Run("inspect", path);
        Assert.Equal(1, rc);
        Assert.StartsWith($"error: {path}: not a valid safetensors file", err);
    }

    [SharedFact("models/tiny-random-gpt2/model.safetensors")]
    public void InspectsRealModelFolder()
    {
        var (rc, output, err) = Run("inspect", Path.GetDirectoryName(SharedData.Path("models/tiny-random-gpt2/model.safetensors"))!);
        Assert.True(rc == 0, err);
        Assert.Contains("40 tensors in 1 file(s)", output);
        Assert.Matches(@"transformer\.wte\.weight\s+F32\s+\[512, 64\]", output);
    }
}
