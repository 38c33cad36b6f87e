using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Tests.Training;

public class TrackingTests
{
    [Fact]
    public void DeadAfterWindowWithoutFiring()
    {
        var t = new FiringTracker(3, deadWindow: 2);
        var acts = Tensor.FromArray(new float[] { 1, 0, 0, 2, 0, 0 }, 2, 3);
        t.Record(acts, Compute.All);
        Assert.Equal(new long[] { 0, 1, 1 }, t.StepsSinceFired);
        var codes = new SparseCodes(1, 3, 1);
        codes.RowStart[1] = 1; codes.Index[0] = 2; codes.Value[0] = 0.5f;
        t.Record(codes, Compute.All);
        Assert.Equal(new[] { false, true, false }, t.DeadMask());
        Assert.Equal(1, t.DeadCount);
        var density = t.Log10Density();
        Assert.Equal(Math.Log10(2 / 3.0 + 1e-10), density[0], 5);
        Assert.Equal(-10, density[1], 5);
    }

    [Fact]
    public void MediansOfKnownSets()
    {
        // Collinear points: the geometric median is the middle one; the mean is pulled by the outlier.
        var x = Tensor.FromArray(new float[] { 0, 0, 1, 0, 100, 0 }, 3, 2);
        var gm = Initialization.GeometricMedian(x, Compute.All, 500, 1e-12);
        Assert.Equal(1.0, gm[0], 2);
        Assert.Equal(0.0, gm[1], 6);
        Assert.Equal(new[] { 1f, 0f }, Initialization.CoordinateMedian(x));
        Assert.Equal(101 / 3f, Initialization.Mean(x, compute: Compute.All)[0], 4);
        var factor = Initialization.NormScalingFactor(new[] { Tensor.FromArray(new float[] { 3, 4, 0, 2 }, 2, 2) });
        Assert.Equal(Math.Sqrt(2) / 3.5, factor, 6);
    }

    [Fact]
    public void MetricsTruncateDropsLaterStepsAndTornLines()
    {
        var dir = Directory.CreateTempSubdirectory();
        var path = Path.Combine(dir.FullName, "metrics.jsonl");
        using (var log = new MetricsLog(path, append: false))
            for (int s = 1; s <= 5; s++) log.Write(new Dictionary<string, double> { ["step"] = s, ["loss"] = 1.0 / s });
        File.AppendAllText(path, "{\"step\": 6, \"lo");
        MetricsLog.TruncateAfterStep(path, 3);
        var lines = File.ReadAllLines(path);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("{\"step\":3", lines[2]);
        dir.Delete(true);
    }

    [Fact]
    public void LatentsDeadLatelyAreToldApartFromLatentsThatNeverFired()
    {
        var t = new FiringTracker(3, deadWindow: 2);
        t.Record([4, 0, 0], 8);   // latent 0 fires once, early
        t.Record([0, 0, 1], 8);   // latent 2 fires at the second step
        t.Record([0, 0, 0], 8);
        t.Record([0, 0, 0], 8);
        Assert.Equal(3, t.DeadCount);          // none fired in the last 2 steps
        Assert.Equal(1, t.NeverFiredCount);    // only latent 1 never fired at all
        t.ResetWindow();
        Assert.Equal(1, t.NeverFiredCount);    // the run-long count survives the density window
    }
}
