using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.IO;

public class AtomicFileTests
{
    [Fact]
    public void FailedWriteLeavesOldFileIntact()
    {
        using var dir = new TempDir();
        string path = dir.File("keep.bin");
        AtomicFile.WriteAllText(path, "old contents");
        var ex = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.Write("new partial data that must never appear"u8);
            s.Flush();
            throw new InvalidOperationException("boom");
        }));
        Assert.Equal("boom", ex.Message);
        Assert.Equal("old contents", File.ReadAllText(path));
        Assert.False(File.Exists(path + ".tmp"));
        Assert.Single(Directory.GetFiles(dir.Root));
    }

    [Fact]
    public void FailedWriteOverSafetensorsLeavesItReadable()
    {
        using var dir = new TempDir();
        string path = dir.File("w.safetensors");
        new SafetensorsWriter().Add("a", Tensor.FromArray([1f, 2f], 2)).Write(path);
        Assert.Throws<IOException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[1000]);
            throw new IOException("disk full (simulated)");
        }));
        using var f = SafetensorsFile.Open(path);
        Assert.Equal([1f, 2f], f.ReadFloat32("a").ToArray());
    }

    [Fact]
    public void WriteCreatesMissingFolders()
    {
        using var dir = new TempDir();
        string path = System.IO.Path.Combine(dir.Root, "a", "b", "c.npy");
        Npy.Write(path, new int[] { 1 }, 1);
        Assert.Equal([1], Npy.ReadInt32(path).Data);
    }
}
