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
        File.WriteAllText(Path.Combine(root, "latest.json"), "{oops");
        Assert.Throws<InvalidDataException>(() => Checkpoint.LoadLatest(root));
        Directory.Delete(root, true);
    }
}
