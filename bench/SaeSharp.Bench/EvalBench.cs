using System.Text.Json.Nodes;
using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Bench;

/// <summary>
/// `saesharp bench eval`: tokens/s of evaluating one SAE (<see cref="SaeEvaluator.Add"/>: the clean forward, the SAE,
/// the spliced and ablated runs resumed at the hook's block, CE/KL and reconstruction metrics) and its ratio to one
/// clean forward with logits of the same batch: at most about 3 (three whole forwards), less the deeper the hook. Also
/// the parts: the SAE's forward and the logit comparison of one patched run.
/// </summary>
public static class EvalBench
{
    /// <param name="modelPath">A model folder or llama2.c .bin; null uses a random GPT-2-small-shaped model of 4 layers.</param>
    public static int Run(TextWriter o, string? modelPath, string hook, bool quick)
    {
        var compute = Compute.All;
        var (model, name) = BenchUtil.ModelOrRandom(modelPath, quick ? 2 : 4, compute);
        int prompts = quick ? 4 : 8, ctx = quick ? 32 : 128, repeats = 1;
        var batch = BenchUtil.RandomContexts(model, prompts, ctx, seed: 11);
        int bos = batch[0][0];
        int dIn = SaeSharp.Data.ActivationStore.Width(model, hook);
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = dIn, DSae = 16 * dIn, K = 32, Metadata = new JsonObject { ["hook_name"] = hook } }, compute);
        SaeTrainable.Initialize(sae, new Rng(1));
        var hooked = new HookedSae("topk", sae, SaeSite.For(model, sae.Config, "bench"));
        long tokens = (long)prompts * ctx;
        o.WriteLine($"eval benchmark: {name}, {hook} (d_in {dIn}), topk d_sae {sae.Config.DSae} k 32, batch {prompts}x{ctx} tokens, {compute.Threads} threads");

        // Clean forward and eval measured alternately, best of each, so a busy spell on a shared machine hits both alike.
        var evaluator = new SaeEvaluator(model, [hooked], new EvalOptions { ExcludeTokens = [bos] }, compute);
        // Warm-up: tiered JIT promotes a method to optimised code after about 30 calls, and the per-row kernels are called
        // a few times per batch, so small models need a dozen batches first (large ones are GEMM-bound sooner).
        var warm = System.Diagnostics.Stopwatch.StartNew();
        int pairs = 0;
        do { model.RunBatch(batch); evaluator.Add(batch); pairs++; } while (!quick && pairs < 12 && (pairs < 2 || warm.Elapsed.TotalSeconds < 20));
        // Small models: more pairs (about 4 s of work in all), so the minima have a quiet moment to land in.
        if (!quick) repeats = Math.Clamp((int)(4 * pairs / warm.Elapsed.TotalSeconds), 3, 40);
        double clean = double.MaxValue, eval = double.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            model.RunBatch(batch);
            clean = Math.Min(clean, sw.Elapsed.TotalSeconds);
            sw.Restart();
            evaluator.Add(batch);
            eval = Math.Min(eval, sw.Elapsed.TotalSeconds);
        }
        var stream = new LatentStream(model, [hooked], [bos]);
        var latents = stream.Run(batch, withLogits: true);
        double saeForward = BenchUtil.BestSeconds(() => sae.Forward(latents.Saes[0].Input), repeats);
        var reference = new LogitComparison(latents.Logits!, batch, latents.Keep, compute);
        double compare = BenchUtil.BestSeconds(() => reference.Compare(latents.Logits!), repeats);

        o.WriteLine($"  clean forward with logits:   {BenchUtil.Ms(clean)}  {tokens / clean,10:N0} tokens/s   (best of {repeats}, alternating with the eval)");
        o.WriteLine($"  eval of one SAE per batch:   {BenchUtil.Ms(eval)}  {tokens / eval,10:N0} tokens/s   ratio to the clean forward {eval / clean:F2} (three whole forwards: 3; target <= 3.5)");
        o.WriteLine($"    of which the SAE forward:  {BenchUtil.Ms(saeForward)}  ({saeForward / clean:F2} forwards)");
        o.WriteLine($"    one CE/KL comparison:      {BenchUtil.Ms(compare)}  ({compare / clean:F2} forwards; two per SAE)");
        return 0;
    }
}
