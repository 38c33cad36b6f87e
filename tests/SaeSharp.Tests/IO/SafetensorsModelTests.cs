using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.IO;

public class SafetensorsModelTests
{
    /// <summary>A two-shard folder the way Hugging Face saves one: tensors split across files plus an index.</summary>
    private static void MakeShardedFolder(TempDir dir, string? indexOverride = null)
    {
        new SafetensorsWriter()
            .Add("embed.weight", Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 3, 2))
            .Add("layers.0.w", Tensor.FromArray([0.5f, -0.5f], 2), DType.F16)
            .AddMetadata("format", "pt")
            .Write(dir.File("model-00001-of-00002.safetensors"));
        new SafetensorsWriter()
            .Add("layers.1.w", Tensor.FromArray([7f, 8f], 1, 2), DType.BF16)
            .AddInt64("position_ids", [0L, 1L, 2L], 1, 3)
            .Write(dir.File("model-00002-of-00002.safetensors"));
        File.WriteAllText(dir.File(SafetensorsModel.IndexFileName), indexOverride ?? """
            {
              "metadata": {"total_size": 40},
              "weight_map": {
                "embed.weight": "model-00001-of-00002.safetensors",
                "layers.0.w": "model-00001-of-00002.safetensors",
                "layers.1.w": "model-00002-of-00002.safetensors",
                "position_ids": "model-00002-of-00002.safetensors"
              }
            }
            """);
    }

    [Fact]
    public void ReadsTensorsAcrossShards()
    {
        using var dir = new TempDir();
        MakeShardedFolder(dir);
        using var m = SafetensorsModel.Open(dir.Root);
        Assert.Equal(2, m.Shards.Count);
        Assert.Equal(["embed.weight", "layers.0.w", "layers.1.w", "position_ids"], m.Names);
        Assert.EndsWith(SafetensorsModel.IndexFileName, m.Path);
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], m.ReadFloat32("embed.weight", 3, 2).ToArray());
        Assert.Equal([0.5f, -0.5f], m.ReadFloat32("layers.0.w").ToArray());
        Assert.Equal([7f, 8f], m.ReadFloat32("layers.1.w").ToArray());
        Assert.Equal([0L, 1L, 2L], m.ReadInt64("position_ids"));
        Assert.Equal([0, 1, 2], m.ReadInt32("position_ids"));
        Assert.Equal([7.0, 8.0], m.ReadFloat64("layers.1.w"));
        Assert.Equal(DType.BF16, m.Entry("layers.1.w").DType);
        Assert.EndsWith("model-00002-of-00002.safetensors", m.ShardPath("layers.1.w"));
        Assert.True(m.Contains("layers.0.w"));
        Assert.False(m.Contains("lm_head.weight"));
        var ex = Assert.Throws<KeyNotFoundException>(() => m.ReadFloat32("lm_head.weight"));
        Assert.Contains(SafetensorsModel.IndexFileName, ex.Message);

        // The index file itself opens the same way, and ITensorSource hides which one it is.
        using ITensorSource viaIndex = SafetensorsModel.Open(dir.File(SafetensorsModel.IndexFileName));
        Assert.Equal(4, viaIndex.Names.Count);
    }

    [Fact]
    public void SingleFileIsPreferredWhenBothExist()
    {
        using var dir = new TempDir();
        MakeShardedFolder(dir);
        new SafetensorsWriter().Add("only", new Tensor(1)).Write(dir.File(SafetensorsModel.SingleFileName));
        using var m = SafetensorsModel.Open(dir.Root);
        Assert.Equal(["only"], m.Names);
        Assert.EndsWith(SafetensorsModel.SingleFileName, m.Path);
    }

    [Fact]
    public void MissingShardNamesIndexAndShard()
    {
        using var dir = new TempDir();
        MakeShardedFolder(dir);
        File.Delete(dir.File("model-00002-of-00002.safetensors"));
        var ex = Assert.Throws<FileNotFoundException>(() => SafetensorsModel.Open(dir.Root));
        Assert.Contains(dir.File(SafetensorsModel.IndexFileName), ex.Message);
        Assert.Contains("shard 'model-00002-of-00002.safetensors'", ex.Message);
        Assert.Contains("layers.1.w", ex.Message);
    }

    [Fact]
    public void TensorMissingFromItsShardIsNamed()
    {
        using var dir = new TempDir();
        MakeShardedFolder(dir, """{"weight_map": {"embed.weight": "model-00002-of-00002.safetensors"}}""");
        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsModel.Open(dir.Root));
        Assert.Contains(SafetensorsModel.IndexFileName, ex.Message);
        Assert.Contains("'embed.weight'", ex.Message);
        Assert.Contains("model-00002-of-00002.safetensors", ex.Message);
    }

    [Theory]
    [InlineData("{\"weight_map\": ", "not valid JSON")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("{\"metadata\": {}}", "missing object 'weight_map'")]
    [InlineData("{\"weight_map\": {\"a\": 3}}", "weight_map['a'] is not a file name string")]
    [InlineData("{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}", "is not a plain file name")]
    [InlineData("{\"weight_map\": {\"a\": \"\"}}", "is not a plain file name")]
    [InlineData("{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"y.safetensors\"}}", "appears twice")]
    public void BadIndexIsNamed(string index, string problem)
    {
        using var dir = new TempDir();
        MakeShardedFolder(dir, index);
        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsModel.Open(dir.Root));
        Assert.Contains(dir.File(SafetensorsModel.IndexFileName), ex.Message);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void CorruptShardNamesTheShard()
    {
        using var dir = new TempDir();
        MakeShardedFolder(dir);
        File.WriteAllBytes(dir.File("model-00001-of-00002.safetensors"), [1, 2, 3]);
        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsModel.Open(dir.Root));
        Assert.Contains("model-00001-of-00002.safetensors", ex.Message);
    }

    [Fact]
    public void EmptyFolderSaysWhatWasExpected()
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => SafetensorsModel.Open(dir.Root));
        Assert.Contains(SafetensorsModel.SingleFileName, ex.Message);
        Assert.Contains(SafetensorsModel.IndexFileName, ex.Message);
    }
}
