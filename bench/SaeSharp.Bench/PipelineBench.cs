using System.Diagnostics;
using SaeSharp.Data;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Bench;

/// <summary>
/// `saesharp bench pipeline`: activation extraction (model forward to the hook + copy), cache writing, and TopK SAE
/// training tokens/s when streaming from the model, reading a cache, and from memory (the SAE-only ceiling).
/// </summary>
public static class PipelineBench
{
    /// <param name="modelPath">A model folder or llama2.c .bin; null uses a random GPT-2-small-shaped model.</param>
    public static int Run(TextWriter o, string? modelPath, string hook, bool quick)
    {
        var compute = Compute.All;
        var (model, name) = BenchUtil.ModelOrRandom(modelPath, quick ? 3 : 4, compute);
        int ctx = quick ? 32 : 128, prompts = 16, contexts = quick ? 64 : 1024;
        var windows = BenchUtil.RandomContexts(model, contexts, ctx, seed: 9).ToList();
        long tokens = (long)contexts * ctx;
        int dIn = ActivationStore.Width(model, hook);
        o.WriteLine($"activation pipeline: {name}, {hook} (d_in {dIn}), {contexts} contexts x {ctx} tokens, {compute.Threads} threads");

        // Extraction: forward to the hook's block and copy the rows out, batch by batch.
        double extract = BenchUtil.BestSeconds(() =>
        {
            for (int b = 0; b < contexts; b += prompts) ActivationStore.Extract(model, hook, windows.Skip(b).Take(prompts).ToList());
        }, repeats: quick ? 1 : 2);
        o.WriteLine($"  extraction (forward + hook copy): {tokens / extract,12:N0} tokens/s");

        string dir = Directory.CreateTempSubdirectory("saesharp-bench-cache").FullName;
        try
        {
            var sw = Stopwatch.StartNew();
            ActivationCache.Write(dir, model, hook, windows, contextsPerShard: 64, promptsPerBatch: prompts);
            o.WriteLine($"  cache write (f32 shards):          {tokens / sw.Elapsed.TotalSeconds,12:N0} tokens/s");

            int batch = quick ? 512 : 4096, dSae = 16 * dIn, k = 32;
            long steps = tokens / batch - 1;
            double Train(string what, IActivationSource source)
            {
                var sae = SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = dIn, DSae = dSae, K = k }, compute);
                SaeTrainable.Initialize(sae, new Rng(1));
                var cfg = new TrainerSettings { Steps = steps, BatchSize = batch, MetricsEvery = 1000, CheckpointEvery = 0 };
                string run = Path.Combine(dir, "run-" + what);
                var s = Stopwatch.StartNew();
                var summary = new Trainer(new SaeTrainable(sae), source, cfg, run).Run();
                double tps = summary.TokensSeen / s.Elapsed.TotalSeconds;
                o.WriteLine($"  train topk d_sae={dSae} k={k} B={batch}, {what + ":",-12} {tps,12:N0} tokens/s ({summary.Steps} steps)");
                return tps;
            }
            var inMemory = ActivationCache.ReadShard(Path.Combine(dir, "shard_00000.safetensors"), dIn).Acts;
            var warmUp = new Trainer(new SaeTrainable(SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = dIn, DSae = dSae, K = k }, compute)),
                new InMemoryActivationSource(inMemory, 1), new TrainerSettings { Steps = 3, BatchSize = batch, CheckpointEvery = 0 }, Path.Combine(dir, "warm-up"));
            warmUp.Run();
            Train("from memory", new InMemoryActivationSource(inMemory, 1));
            double cached = Train("from cache", new CachedActivationSource(dir, 1, bufferRows: 8 * batch));
            double streamed = Train("streaming", new ActivationStore(model, hook, windows, ctx, prompts, nBatchesInBuffer: 4, seed: 1));
            o.WriteLine($"  streaming / cache: {streamed / cached:F2}");
        }
        finally { Directory.Delete(dir, recursive: true); }
        return 0;
    }
}
