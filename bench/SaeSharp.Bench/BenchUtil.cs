using System.Diagnostics;
using SaeSharp.Models;
using SaeSharp.Tensors;

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

    /// <summary>The model at <paramref name="path"/>, or with null a random GPT-2-small-shaped one of <paramref name="randomLayers"/> layers; and its name.</summary>
    public static (HookedTransformer Model, string Name) ModelOrRandom(string? path, int randomLayers, Compute compute) =>
        path is null
            ? (ModelBench.RandomGpt2(randomLayers, compute), $"random gpt2-small shape ({randomLayers} layers)")
            : (HookedTransformer.Load(path, compute), Path.GetFileName(Path.TrimEndingDirectorySeparator(path)));

    /// <summary><paramref name="count"/> contexts of seeded random tokens, each starting with the model's BOS (0 without one).</summary>
    public static int[][] RandomContexts(HookedTransformer model, int count, int length, ulong seed)
    {
        var rng = new Rng(seed);
        int bos = model.Config.BosTokenId ?? 0;
        return Enumerable.Range(0, count)
            .Select(_ => Enumerable.Range(0, length).Select(p => p == 0 ? bos : rng.NextInt(model.Config.VocabSize)).ToArray()).ToArray();
    }
}
