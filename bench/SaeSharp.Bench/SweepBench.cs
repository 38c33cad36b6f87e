using System.Diagnostics;
using SaeSharp.Data;
using SaeSharp.Models;
using SaeSharp.Runs;
using SaeSharp.Tensors;

namespace SaeSharp.Bench;

/// <summary>
/// Several SAEs from one model pass against the same SAEs trained one after another, each with its own model pass:
/// four SAEs on stories260K (two on one hook, one on the MLP output, a transcoder from ln2 to it), the same settings
/// and rows either way. Prints rows/s of the stream and SAE-rows/s (rows × SAEs trained) for both, with the model's
/// own hook-extraction rate measured in the same run as the reference.
/// </summary>
public static class SweepBench
{
    public static int Run(TextWriter output, string modelPath, string dataset, bool quick, Compute? compute = null)
    {
        compute ??= Compute.All;
        long steps = quick ? 8 : 120;
        var shared = new TrainSettings
        {
            Steps = steps, BatchSize = 1024, Lr = 1e-3, Seed = 1, DSae = quick ? 256 : 2048, K = 16, L1Coefficient = 1,
            MetricsEvery = 1_000_000, CheckpointEvery = 0, HookName = "blocks.2.hook_resid_post",
            Contexts = new() { ContextSize = 128, StoreBatchSizePrompts = 16 }, NBatchesInBuffer = 8,
        };
        List<SweepMember> saes =
        [
            new("topk16", shared with { Architecture = "topk" }),
            new("batchtopk32", shared with { Architecture = "batchtopk", K = 32 }),
            new("standard-mlp", shared with { Architecture = "standard", HookName = "blocks.1.hook_mlp_out" }),
            new("transcoder", shared with { Architecture = "transcoder", HookName = "blocks.1.ln2.hook_normalized", HookNameOut = "blocks.1.hook_mlp_out" }),
        ];
        long rows = steps * shared.BatchSize;
        output.WriteLine($"sweep benchmark ({compute.Threads} threads): {saes.Count} SAEs (d_sae {shared.DSae}) on stories260K, {steps} steps of {shared.BatchSize:N0} rows each");
        double reference = ExtractionRate(modelPath, dataset, shared, compute);
        output.WriteLine($"  reference: the model's forward up to block 2 with its hooks copied out: {reference:N0} tokens/s");
        string root = Directory.CreateTempSubdirectory("saesharp-bench-sweep").FullName;
        try
        {
            // Warm-up: both paths once on a few steps, so neither timing pays for the JIT.
            var warm = saes.Select(m => m with { Settings = m.Settings with { Steps = 2 } }).ToList();
            SweepRun.Execute(shared with { Steps = 2 }, warm, TrainInputs.Open(shared with { Steps = 2 }, [.. warm.Select(m => m.Settings)], compute, null, null, modelPath, dataset, null),
                Path.Combine(root, "warm-sweep"), compute);
            foreach (var m in warm) TrainRun.Execute(m.Settings, TrainInputs.Open(m.Settings, compute, null, null, modelPath, dataset, null), Path.Combine(root, "warm-" + m.Name), compute);
            var clock = Stopwatch.StartNew();
            var data = TrainInputs.Open(shared, [.. saes.Select(m => m.Settings)], compute, null, null, modelPath, dataset, null);
            SweepRun.Execute(shared, saes, data, Path.Combine(root, "sweep"), compute);
            double oneS = clock.Elapsed.TotalSeconds;
            output.WriteLine($"  one pass for all {saes.Count}: {oneS:F1} s, {rows / oneS:N0} rows/s of the stream = {saes.Count * rows / oneS:N0} SAE-rows/s; ratio to the reference {rows / oneS / reference:F2}");
            double separateS = 0;
            foreach (var m in saes)
            {
                clock.Restart();
                TrainRun.Execute(m.Settings, TrainInputs.Open(m.Settings, compute, null, null, modelPath, dataset, null), Path.Combine(root, m.Name), compute);
                double s = clock.Elapsed.TotalSeconds;
                separateS += s;
                output.WriteLine($"    {m.Name} alone: {s:F1} s, {rows / s:N0} rows/s");
            }
            output.WriteLine($"  {saes.Count} separate runs: {separateS:F1} s, {saes.Count * rows / separateS:N0} SAE-rows/s; ratio to the reference {rows / (separateS / saes.Count) / reference:F2} per run");
            output.WriteLine($"  one pass is {separateS / oneS:F2}x the separate runs' SAE-rows/s");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
        return 0;
    }

    /// <summary>Tokens/s of the model over the dataset's first contexts, caching the sweep's hooks (the work a stream does per batch, without an SAE).</summary>
    private static double ExtractionRate(string modelPath, string dataset, TrainSettings s, Compute compute)
    {
        var model = HookedTransformer.Load(modelPath, compute);
        var contexts = ModelInputs.Contexts(ModelInputs.Documents(null, dataset, modelPath, addBos: false), model.Config, s.Contexts).Take(s.Contexts.StoreBatchSizePrompts).ToList();
        const string hooks = "blocks.2.hook_resid_post,blocks.1.hook_mlp_out,blocks.1.ln2.hook_normalized";
        double seconds = BenchUtil.BestSeconds(() => ActivationStore.Extract(model, hooks, contexts));
        return contexts.Sum(c => c.Length) / seconds;
    }
}
