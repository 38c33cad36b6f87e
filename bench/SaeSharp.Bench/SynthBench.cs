using System.Diagnostics;
using SaeSharp.Saes;
using SaeSharp.Synthetic;
using SaeSharp.Training;
using SaeSharp.Tensors;

namespace SaeSharp.Bench;

/// <summary>
/// Samples/s generating synth-sae-bench-16k batches (feature activations, and hidden activations through the
/// dictionary), and of generating while training a 4096-wide TopK SAE on them.
/// </summary>
public static class SynthBench
{
    public static int Run(TextWriter output, bool quick)
    {
        var compute = Compute.All;
        var preset = SyntheticModel.Preset("synth-sae-bench-16k");
        // 100 Adam steps on a 16k × 16k Gram matrix take too long for a benchmark (and do not affect sampling speed):
        // build without them, and in the full run time one step to report the per-step cost.
        const int steps = 0;
        var cfg = preset with { Orthogonalize = preset.Orthogonalize! with { Steps = steps } };
        output.WriteLine($"synth-sae-bench-16k: {cfg.NumFeatures} features, hidden {cfg.HiddenDim}, {Environment.ProcessorCount} threads");
        output.WriteLine($"NOTE: built with {steps} of the preset's {preset.Orthogonalize!.Steps} orthogonalisation steps (reduced for the benchmark)");
        var sw = Stopwatch.StartNew();
        var model = SyntheticModel.Build(cfg, compute);
        double build = sw.Elapsed.TotalSeconds;
        output.WriteLine($"construction: {build:F2} s");
        if (!quick)
        {
            var v = model.Dictionary.FeatureVectors.Clone();
            sw.Restart();
            FeatureDictionary.Orthogonalize(v, 1, 3e-4f, compute: compute);
            double perStep = sw.Elapsed.TotalSeconds;
            output.WriteLine($"orthogonalisation: {perStep:F2} s/step (the full preset's {preset.Orthogonalize.Steps} steps ≈ {perStep * preset.Orthogonalize.Steps:F0} s)");
        }

        const int batch = 1024;
        var rng = new Rng(1);
        // Warm-up: tiered JIT promotes a method after 30 calls, and the generator calls some once per block of 64 rows.
        for (int w = 0; w < 10; w++) model.SampleCodes(batch, rng, compute);
        int rounds = quick ? 3 : 10;
        long samples = 0; double l0 = 0;
        sw.Restart();
        for (int r = 0; r < rounds; r++)
        {
            var f = model.Generator.SampleCodes(batch, rng, compute);
            l0 += (double)f.Count / batch;
            samples += batch;
        }
        double featureRate = samples / sw.Elapsed.TotalSeconds;
        samples = 0;
        sw.Restart();
        for (int r = 0; r < rounds; r++) { model.SampleCodes(batch, rng, compute); samples += batch; }
        double hiddenRate = samples / sw.Elapsed.TotalSeconds;
        samples = 0;
        sw.Restart();
        for (int r = 0; r < rounds; r++) { model.Sample(batch, rng, compute); samples += batch; }
        double denseFeatureRate = samples / sw.Elapsed.TotalSeconds;
        var (fs, _) = model.Sample(64, rng, compute);
        sw.Restart();
        model.Dictionary.Forward(fs, compute);
        double denseRate = 64 / sw.Elapsed.TotalSeconds;
        output.WriteLine($"mean L0 of generated features: {l0 / rounds:F1}");
        output.WriteLine($"feature activations (sparse codes):      {featureRate,10:F0} samples/s (batch {batch})");
        output.WriteLine($"features + hidden (sparse f·V) [B, 768]: {hiddenRate,10:F0} samples/s (what training draws)");
        output.WriteLine($"the same with dense features [B, 16384]: {denseFeatureRate,10:F0} samples/s (for evaluation)");
        output.WriteLine($"dense f·V GEMM alone, for comparison:    {denseRate,10:F0} samples/s");

        // Training a 4096-wide TopK SAE on freshly generated batches: generation and training share the cores.
        const int dSae = 4096, k = 32, trainBatch = 4096;
        int trainSteps = quick ? 3 : 12;
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = cfg.HiddenDim, DSae = dSae, K = k }, compute);
        SaeTrainable.Initialize(sae, new Rng(2));
        string run = Directory.CreateTempSubdirectory("saesharp-bench-synth").FullName;
        try
        {
            var trainCfg = new TrainerSettings { Steps = trainSteps, BatchSize = trainBatch, MetricsEvery = 1000, CheckpointEvery = 0 };
            new Trainer(new SaeTrainable(sae), new SyntheticActivationSource(model, 3, compute), trainCfg with { Steps = 2 }, Path.Combine(run, "warm-up")).Run();
            sw.Restart();
            var summary = new Trainer(new SaeTrainable(sae), new SyntheticActivationSource(model, 4, compute), trainCfg, Path.Combine(run, "timed")).Run();
            double trainRate = summary.TokensSeen / sw.Elapsed.TotalSeconds;
            output.WriteLine($"generate + train topk d_sae={dSae} k={k} (batch {trainBatch}): {trainRate,10:F0} samples/s; " +
                             $"200M samples would take {200e6 / trainRate / 60:F0} min (target ≤ 90)");
        }
        finally { Directory.Delete(run, recursive: true); }
        return 0;
    }
}
