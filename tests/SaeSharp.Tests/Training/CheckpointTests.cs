using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Tests.Training;

public class CheckpointTests
{
    [Fact]
    public void LatestCompleteCheckpointRoundTrips()
    {
        var root = Directory.CreateTempSubdirectory().FullName;
        for (long step = 10; step <= 30; step += 10)
        {
            var cp = new Checkpoint();
            cp.Tensors["W"] = Tensor.Filled(step, 2, 3);
            cp.Integers["since"] = new long[] { step, 1, 2 };
            cp.State["step"] = step.ToString();
            cp.Save(root, step, keep: 2);
        }
        // A half-written checkpoint from a kill is ignored.
        Directory.CreateDirectory(Path.Combine(root, "step_000000040.tmp"));
        var (loaded, at) = Checkpoint.LoadLatest(root)!.Value;
        Assert.Equal(30, at);
        Assert.Equal(Enumerable.Repeat(30f, 6), loaded.RequireTensor("W").ToArray());
        Assert.Equal(new long[] { 30, 1, 2 }, loaded.RequireIntegers("since"));
        Assert.Equal("30", loaded.Require("step"));
        Assert.Equal(2, Directory.GetDirectories(root, "step_*").Count(d => !d.EndsWith(".tmp")));
        Assert.Throws<InvalidDataException>(() => loaded.Require("missing"));
        Assert.Null(Checkpoint.LoadLatest(Path.Combine(root, "nothing-here")));
        Directory.Delete(root, true);
    }

    private static string ThreeCheckpoints()
    {
        var root = Directory.CreateTempSubdirectory().FullName;
        for (long step = 10; step <= 30; step += 10)
        {
            var cp = new Checkpoint();
            cp.Tensors["W"] = Tensor.Filled(step, 2, 3);
            cp.State["step"] = step.ToString();
            cp.Save(root, step, keep: 2);
        }
        return root;
    }

    [Fact]
    public void DamagedNewestCheckpointFallsBackToThePreviousIntactOneWithAWarning()
    {
        var root = ThreeCheckpoints();
        // One flipped byte in the newest checkpoint's tensors: its checksum no longer holds.
        string tensors = Path.Combine(root, "step_000000030", "state.safetensors");
        var bytes = File.ReadAllBytes(tensors);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(tensors, bytes);
        var warnings = new List<string>();
        var (loaded, at) = Checkpoint.LoadLatest(root, warnings.Add)!.Value;
        Assert.Equal(20, at);
        Assert.Equal(Enumerable.Repeat(20f, 6), loaded.RequireTensor("W").ToArray());
        Assert.Contains(warnings, w => w.Contains("step_000000030") && w.Contains("checksum"));
        Assert.Contains(warnings, w => w.Contains("step_000000020"));

        // A damaged pointer file is passed over too: the newest intact folder is found by name.
        File.WriteAllText(Path.Combine(root, "latest.json"), "{oops");
        warnings.Clear();
        Assert.Equal(20, Checkpoint.LoadLatest(root, warnings.Add)!.Value.Step);
        Assert.Contains(warnings, w => w.Contains("latest.json"));

        // When every checkpoint is damaged, resuming is an error that names the folder.
        File.Delete(Path.Combine(root, "step_000000020", "state.json"));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadLatest(root));
        Assert.Contains(root, e.Message);
        Directory.Delete(root, true);
    }
}
