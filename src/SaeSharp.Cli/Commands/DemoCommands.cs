using System.CommandLine;
using SaeSharp.Cli.Runs;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp demo` (the built-in main job) and `saesharp synth train` (full synthetic-benchmark runs).</summary>
public static class DemoCommands
{
    public static Command BuildDemo()
    {
        var demo = new Command("demo", "Built-in synthetic benchmark: train a TopK and a standard SAE on a toy model with known features, print MCC/F1/L0/EV, write report.html");
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/demo" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of every random choice", DefaultValueFactory = _ => 42UL };
        demo.Add(output); demo.Add(seed);
        demo.SetAction(p =>
        {
            var o = p.InvocationConfiguration.Output;
            var model = SyntheticModel.BuildPreset("toy", p.GetValue(seed));
            double trueL0 = SyntheticEvals.MeanL0(model.Sample(8192, new Rng(p.GetValue(seed) + 7)).Features);
            int k = Math.Max(1, (int)Math.Round(2.5 * trueL0)); // TopK needs slack above the true L0 to separate co-firing (hierarchical) features
            o.WriteLine($"toy synthetic model: {model.Config.NumFeatures} features in {model.Config.HiddenDim} dimensions, hierarchy + correlation, true L0 {trueL0:F2}");
            var common = new TrainSettings
            {
                DSae = model.Config.NumFeatures, Steps = 6000, BatchSize = 512, Lr = 3e-3, MetricsEvery = 100, CheckpointEvery = 0,
                DeadFeatureWindow = 500, Seed = p.GetValue(seed), BDecInit = "zeros",
            };
            var runs = new List<(string, TrainSettings)>
            {
                ($"topk_k{k}", common with { Architecture = "topk", K = k }),
                ("standard_l1", common with { Architecture = "standard", L1Coefficient = 0.1, L1WarmUpSteps = 300, UnitNormDecoder = true }),
            };
            var (cts, reg) = Progress.InterruptToken();
            using (reg) SyntheticRun.Execute(model, runs, p.GetValue(output)!, o, cts.Token);
            return 0;
        });
        return demo;
    }
}
