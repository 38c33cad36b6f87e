using System.CommandLine;
using SaeSharp.Runs;
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
        var overwrite = Overwrite();
        demo.Add(output); demo.Add(seed); demo.Add(overwrite);
        demo.SetAction(p =>
        {
            var o = p.InvocationConfiguration.Output;
            var model = SyntheticModel.BuildPreset("toy", Compute.All, p.GetValue(seed));
            // The same samples the table's "L0 true" is computed on.
            double trueL0 = SyntheticEvals.MeanL0(SyntheticRun.EvaluationSamples(model, Compute.All).Features);
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
            using (reg) SyntheticRun.Execute(model, runs, p.GetValue(output)!, Compute.All, Mode(p, overwrite), Progress.For(o), cts.Token);
            return 0;
        });
        return demo;
    }

    private static Option<bool> Overwrite() => new("--overwrite") { Description = "Replace the runs already in --out instead of refusing" };

    private static RunFolderMode Mode(ParseResult p, Option<bool> overwrite) => p.GetValue(overwrite) ? RunFolderMode.Overwrite : RunFolderMode.New;

    /// <summary>`saesharp synth train`: one SAE trained on a preset (or saved) synthetic model for a sample budget, scored against its true features.</summary>
    public static Command BuildSynthTrain()
    {
        var cmd = new Command("train", "Train an SAE on a synthetic model's activations for --samples samples; print MCC/F1/L0/EV and write report.html");
        var preset = new Option<string>("--preset") { Description = $"Preset: {string.Join(", ", SyntheticModel.PresetNames)}", DefaultValueFactory = _ => "toy" };
        var model = new Option<string?>("--synthetic-model") { Description = "A folder written by `synth build`, or a synthetic model config (.yaml/.json) to build (instead of --preset)" };
        var samples = new Option<long?>("--samples") { Description = "Training samples (steps = samples / batch size); default: the steps setting" };
        var orthoSteps = new Option<int?>("--ortho-steps") { Description = "Override the preset's orthogonalisation steps" };
        var evalSamples = new Option<int>("--eval-samples") { Description = "Fresh samples for the final evaluation", DefaultValueFactory = _ => 8192 };
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/synth" };
        var overwrite = Overwrite();
        var settingOptions = TrainSettingOptions.Create();
        foreach (var o in new Option[] { preset, model, samples, orthoSteps, evalSamples, output, overwrite }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var o = p.InvocationConfiguration.Output;
            var settings = settingOptions.Bind(p, new TrainSettings { CheckpointEvery = 0 });
            if (p.GetValue(samples) is long n)
            {
                if (n < settings.BatchSize) throw new ArgumentException($"--samples must be at least the batch size ({settings.BatchSize}), got {n}");
                settings = settings with { Steps = n / settings.BatchSize };
            }
            SyntheticModel synthetic;
            if (p.GetValue(model) is { } dir)
            {
                if (p.GetResult(preset) is { Tokens.Count: > 0 }) throw new ArgumentException("give --preset or --synthetic-model, not both");
                synthetic = SynthCommands.Open(dir);
            }
            else
            {
                var cfg = SyntheticModel.Preset(p.GetValue(preset)!, settings.Seed);
                if (p.GetValue(orthoSteps) is int steps)
                {
                    if (steps < 0) throw new ArgumentException($"--ortho-steps must be non-negative, got {steps}");
                    cfg = cfg with { Orthogonalize = (cfg.Orthogonalize ?? new OrthogonalizeSpec(0, 0.01)) with { Steps = steps } };
                }
                var clock = System.Diagnostics.Stopwatch.StartNew();
                synthetic = SyntheticModel.Build(cfg, compute: Compute.All);
                o.WriteLine($"built {p.GetValue(preset)}: {cfg.NumFeatures} features in {cfg.HiddenDim} dimensions in {clock.Elapsed.TotalSeconds:F1} s");
            }
            o.WriteLine($"training {settings.Architecture} d_sae={settings.DSae} on {settings.TotalSteps() * settings.BatchSize:N0} samples ({settings.TotalSteps()} steps of {settings.BatchSize})");
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                var results = SyntheticRun.Execute(synthetic, [(settings.Architecture, settings)], p.GetValue(output)!, Compute.All, Mode(p, overwrite), Progress.For(o), cts.Token, p.GetValue(evalSamples));
                var r = results[0];
                o.WriteLine($"throughput: {settings.TotalSteps() * settings.BatchSize / r.Elapsed.TotalSeconds:N0} samples/s (generation + training)");
            }
            return 0;
        });
        return cmd;
    }
}
