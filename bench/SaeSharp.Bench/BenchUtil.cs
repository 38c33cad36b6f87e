using System.Diagnostics;

namespace SaeSharp.Bench;

/// <summary>Timing helpers shared by every benchmark: warm up once, then report the best of several runs.</summary>
public static class BenchUtil
{
    /// <summary>Best wall time in seconds of <paramref name="repeats"/> runs after one warm-up run.</summary>
    public static double BestSeconds(Action action, int repeats = 3)
    {
        action();
        double best = double.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            action();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    public static string Ms(double seconds) => $"{seconds * 1e3,9:F1} ms";
}
