using System.CommandLine;
using SaeSharp.Bench;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp bench ...`: throughput benchmarks that print their figures.</summary>
public static class BenchCommands
{
    public static Command Build()
    {
        var bench = new Command("bench", "Run throughput benchmarks and print their figures");
        var kernels = new Command("kernels", "FMA peak, GEMM GFLOP/s for SAE shapes, top-k and sparse-decode throughput");
        var quick = new Option<bool>("--quick") { Description = "Smaller shapes and fewer repetitions (a smoke run)" };
        var peer = new Option<bool>("--peer") { Description = "Time every GEMM shape with NumPy on the system BLAS (OpenBLAS) too, right after SaeSharp's, and print the ratio (needs python3-numpy)" };
        var blockings = new Option<bool>("--blocking") { Description = "Instead: the GEMM shapes on one thread under other KC/MC blockings than the chosen one" };
        kernels.Add(quick);
        kernels.Add(peer);
        kernels.Add(blockings);
        kernels.SetAction(p =>
        {
            if (!p.GetValue(blockings)) return KernelBench.Run(p.InvocationConfiguration.Output, p.GetValue(quick), p.GetValue(peer));
            BlockingSweep.Run(p.InvocationConfiguration.Output, p.GetValue(quick));
            return 0;
        });
        bench.Add(kernels);
        var models = new Command("models", "Transformer forward tokens/s: stories260K and a random GPT-2-small-shaped model (8x128 tokens)");
        var stories = new Option<string?>("--stories") { Description = "stories260K folder or .bin (omit to skip)" };
        var quickModels = new Option<bool>("--quick") { Description = "A 2-layer slice on a few tokens (a smoke run)" };
        models.Add(stories);
        models.Add(quickModels);
        models.SetAction(p => ModelBench.Run(p.InvocationConfiguration.Output, p.GetValue(quickModels), p.GetValue(stories)));
        bench.Add(models);
        var synth = new Command("synth", "Samples/s generating synth-sae-bench-16k batches, and generating while training a 4096-wide TopK SAE on them");
        var synthQuick = new Option<bool>("--quick") { Description = "Fewer batches, no orthogonalisation timing" };
        synth.Add(synthQuick);
        synth.SetAction(p => SynthBench.Run(p.InvocationConfiguration.Output, p.GetValue(synthQuick)));
        bench.Add(synth);
        var train = new Command("train", "Tokens/s of a full SAE training step per architecture (B=4096, d_in=512, d_sae=16384, k=32)");
        var trainQuick = new Option<bool>("--quick") { Description = "Smaller shapes (a smoke run)" };
        train.Add(trainQuick);
        var trainArch = new Option<string?>("--architecture") { Description = "Only these architectures, comma-separated (default: all)" };
        train.Add(trainArch);
        var trainPeer = new Option<bool>("--peer") { Description = "Run the topk (with and without AuxK) and standard steps in PyTorch too, right after SaeSharp's, and print the ratio (needs python3-torch)" };
        train.Add(trainPeer);
        train.SetAction(p => TrainBench.Run(p.InvocationConfiguration.Output, p.GetValue(trainQuick),
            p.GetValue(trainArch)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), p.GetValue(trainPeer)));
        bench.Add(train);
        var pipeline = new Command("pipeline", "Activation extraction, cache writing, and SAE training tokens/s streaming from a model vs from a cache");
        var pipeModel = new Option<string?>("--model") { Description = "Model folder or llama2.c .bin (default: a random GPT-2-small-shaped model)" };
        var pipeHook = new Option<string>("--hook") { Description = "Hook to extract", DefaultValueFactory = _ => "blocks.2.hook_resid_post" };
        var pipeQuick = new Option<bool>("--quick") { Description = "Fewer, shorter contexts (a smoke run)" };
        pipeline.Add(pipeModel); pipeline.Add(pipeHook); pipeline.Add(pipeQuick);
        pipeline.SetAction(p => PipelineBench.Run(p.InvocationConfiguration.Output, p.GetValue(pipeModel), p.GetValue(pipeHook)!, p.GetValue(pipeQuick)));
        bench.Add(pipeline);
        var eval = new Command("eval", "Tokens/s of evaluating one SAE (clean, spliced and ablated forwards, CE/KL, metrics) and its ratio to the clean forward");
        var evalModel = new Option<string?>("--model") { Description = "Model folder or llama2.c .bin (default: a random GPT-2-small-shaped model, 4 layers)" };
        var evalHook = new Option<string>("--hook") { Description = "Hook of the SAE", DefaultValueFactory = _ => "blocks.1.hook_resid_post" };
        var evalQuick = new Option<bool>("--quick") { Description = "A small batch, one repetition (a smoke run)" };
        eval.Add(evalModel); eval.Add(evalHook); eval.Add(evalQuick);
        eval.SetAction(p => EvalBench.Run(p.InvocationConfiguration.Output, p.GetValue(evalModel), p.GetValue(evalHook)!, p.GetValue(evalQuick)));
        bench.Add(eval);
        var sweep = new Command("sweep", "Four SAEs on stories260K trained from one model pass vs four separate runs: rows/s and SAE-rows/s of each");
        var sweepModel = new Option<string>("--model") { Description = "stories260K folder", DefaultValueFactory = _ => "../shared/models/stories260K" };
        var sweepData = new Option<string>("--dataset") { Description = "Text to stream", DefaultValueFactory = _ => "../shared/corpora/tinystories_validation_head.txt" };
        var sweepQuick = new Option<bool>("--quick") { Description = "A few steps of narrow SAEs (a smoke run)" };
        sweep.Add(sweepModel); sweep.Add(sweepData); sweep.Add(sweepQuick);
        sweep.SetAction(p => SweepBench.Run(p.InvocationConfiguration.Output, p.GetValue(sweepModel)!, p.GetValue(sweepData)!, p.GetValue(sweepQuick)));
        bench.Add(sweep);
        var analyze = new Command("analyze", "Feature analysis of one 16k-latent top-k SAE over 1M tokens: peak memory, tokens/s and its ratio to eval's");
        var anModel = new Option<string?>("--model") { Description = "Model folder or llama2.c .bin (default: a random GPT-2-small-shaped model, 4 layers)" };
        var anHook = new Option<string>("--hook") { Description = "Hook of the SAE", DefaultValueFactory = _ => "blocks.1.hook_resid_post" };
        var anTokens = new Option<long>("--tokens") { Description = "Tokens to analyse", DefaultValueFactory = _ => 1L << 20 };
        var anDSae = new Option<int>("--d-sae") { Description = "Latents of the SAE", DefaultValueFactory = _ => 16_384 };
        var anQuick = new Option<bool>("--quick") { Description = "16k tokens and 2048 latents (a smoke run)" };
        foreach (var opt in new Option[] { anModel, anHook, anTokens, anDSae, anQuick }) analyze.Add(opt);
        analyze.SetAction(p => AnalyzeBench.Run(p.InvocationConfiguration.Output, p.GetValue(anModel), p.GetValue(anHook)!, p.GetValue(anTokens), p.GetValue(anDSae), p.GetValue(anQuick)));
        bench.Add(analyze);
        var match = new Command("match", "Time to match two 16k-latent SAEs by activation cosine over 100k tokens (synthetic codes), with a dense GEMM as yardstick");
        var matchQuick = new Option<bool>("--quick") { Description = "2k latents over 10k tokens (a smoke run)" };
        match.Add(matchQuick);
        match.SetAction(p => MatchBench.Run(p.InvocationConfiguration.Output, p.GetValue(matchQuick)));
        bench.Add(match);
        var serve = new Command("serve", "A bounded loopback load on saesharp serve: concurrent clients on feature pages and live text searches; requests/s, p50/p99 latency, errors");
        var svStore = new Option<string?>("--store") { Description = "A folder holding features.db (default: a 512-latent top-k SAE on stories260K analysed in a temp folder)" };
        var svModel = new Option<string>("--model") { Description = "Model of the default store", DefaultValueFactory = _ => "../shared/models/stories260K" };
        var svData = new Option<string>("--dataset") { Description = "Text the default store is analysed over", DefaultValueFactory = _ => "../shared/corpora/tinystories_validation_head.txt" };
        var svClients = new Option<int>("--clients") { Description = "Concurrent clients", DefaultValueFactory = _ => 32 };
        var svSeconds = new Option<double>("--seconds") { Description = "Length of the load", DefaultValueFactory = _ => 20 };
        var svQuick = new Option<bool>("--quick") { Description = "8 clients for 3 s on a store of 4k tokens (a smoke run)" };
        foreach (var opt in new Option[] { svStore, svModel, svData, svClients, svSeconds, svQuick }) serve.Add(opt);
        serve.SetAction(p => ServeBench.Run(p.InvocationConfiguration.Output, p.GetValue(svStore), p.GetValue(svModel)!, p.GetValue(svData)!, p.GetValue(svClients),
            p.GetValue(svSeconds), p.GetValue(svQuick)));
        bench.Add(serve);
        return bench;
    }
}
