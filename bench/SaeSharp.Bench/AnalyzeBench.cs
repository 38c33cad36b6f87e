using System.Diagnostics;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Evals;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Bench;

/// <summary>
/// `saesharp bench analyze`: the feature analysis of one top-k SAE (16,384 latents, k 32 by default) over 1M tokens —
/// the streaming pass (model to the hook, SAE, per-latent collection and spill), the second pass over the spill, the
/// logit tables and the feature store — with the process's peak memory and the tokens/s of the whole job and of the
/// streaming pass, each as a ratio to `saesharp eval`'s tokens/s for the same model, SAE and batch (measured in the same
/// run; target ≥ 0.8, memory target under 2 GB).
/// </summary>
public static class AnalyzeBench
{
    /// <param name="modelPath">A model folder or llama2.c .bin; null uses a random GPT-2-small-shaped model of 4 layers.</param>
    public static int Run(TextWriter o, string? modelPath, string hook, long tokens, int dSae, bool quick)
    {
        var compute = Compute.All;
        var (model, name) = BenchUtil.ModelOrRandom(modelPath, 4, compute);
        if (quick) { tokens = Math.Min(tokens, 16_384); dSae = Math.Min(dSae, 2048); }
        const int ContextSize = 128, Prompts = 32;
        int dIn = SaeSharp.Data.ActivationStore.Width(model, hook);
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = dIn, DSae = dSae, K = 32, Metadata = new JsonObject { ["hook_name"] = hook } }, compute);
        SaeTrainable.Initialize(sae, new Rng(1));
        var hooked = new HookedSae("topk", sae, SaeSite.For(model, sae.Config, "bench"));
        int contexts = (int)(tokens / ContextSize);
        var all = BenchUtil.RandomContexts(model, contexts, ContextSize, seed: 5);
        int bos = model.Config.BosTokenId ?? 0;
        o.WriteLine($"analyze benchmark: {name}, {hook} (d_in {dIn}), topk d_sae {dSae} k 32, {contexts:N0} contexts of {ContextSize} ({(long)contexts * ContextSize:N0} tokens), batches of {Prompts}, {compute.Threads} threads");

        // `saesharp eval` on the same batches: after warm-up, the best of a few batches.
        var evaluator = new SaeEvaluator(model, [hooked], new EvalOptions { ExcludeTokens = [bos] }, compute);
        var batch = all.Take(Prompts).ToArray();
        double eval = BenchUtil.BestSeconds(() => evaluator.Add(batch), quick ? 1 : 3);
        double evalTps = batch.Length * ContextSize / eval;

        string spill = Directory.CreateTempSubdirectory("saesharp-bench-analyze").FullName;
        try
        {
            var analyzer = new FeatureAnalyzer(new FeatureAnalysisOptions(), compute) { SpillDirectory = spill };
            var clock = Stopwatch.StartNew();
            double pass = 0;
            var analysis = analyzer.Analyze(model, hooked, all, Prompts, [bos], tokenizer: null, p =>
            {
                if (p.Batches * Prompts >= contexts) pass = clock.Elapsed.TotalSeconds;
            });
            double analyzed = clock.Elapsed.TotalSeconds;
            FeatureStore.Write(Path.Combine(spill, FeatureStore.FileName), analysis);
            double total = clock.Elapsed.TotalSeconds;
            long positions = (long)contexts * ContextSize;
            double peakGb = Process.GetCurrentProcess().PeakWorkingSet64 / (double)(1L << 30);
            o.WriteLine($"  eval (saesharp eval, one batch):   {evalTps,12:N0} tokens/s");
            o.WriteLine($"  analysis streaming pass:           {positions / pass,12:N0} tokens/s   ratio to eval {positions / pass / evalTps:F2}  ({pass:F1} s)");
            o.WriteLine($"  spill pass and logit tables:       {analyzed - pass,12:F1} s");
            o.WriteLine($"  feature store write:               {total - analyzed,12:F1} s   ({new FileInfo(Path.Combine(spill, FeatureStore.FileName)).Length / 1e6:F0} MB)");
            o.WriteLine($"  whole analysis:                    {positions / total,12:N0} tokens/s   ratio to eval {positions / total / evalTps:F2} (target >= 0.8)");
            o.WriteLine($"  peak memory (process):             {peakGb,12:F2} GB (target < 2 GB)");
        }
        finally { Directory.Delete(spill, recursive: true); }
        return 0;
    }
}
