using System.CommandLine;
using SaeSharp.Cli.Runs;
using SaeSharp.Data;
using SaeSharp.IO;
using Setting = SaeSharp.IO.ConfigBinder.Setting;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp train`: train an SAE on activations (a .npy matrix; model streaming and caches come from the data pipeline).</summary>
public static class TrainCommands
{
    public static Command Build()
    {
        var train = new Command("train", "Train a sparse autoencoder; writes cfg.json, sae_weights.safetensors, sparsity.safetensors, metrics.jsonl and checkpoints");
        var activations = new Option<string?>("--activations") { Description = "Activations as a [n, d_in] .npy file (drrik's activations.npy)" };
        var config = new Option<string?>("--config") { Description = "YAML file of settings (snake_case keys; unknown keys are errors)" };
        var output = new Option<string>("--out") { Description = "Run folder", DefaultValueFactory = _ => "runs/train" };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder from its latest checkpoint" };
        var set = new Option<string[]>("--set") { Description = "Any setting as key=value (repeatable)", AllowMultipleArgumentsPerToken = false };
        // The most common settings as their own flags; everything else through --config or --set.
        var flags = new (string Key, Option Option)[]
        {
            ("architecture", new Option<string>("--architecture") { Description = "standard, topk, batchtopk, jumprelu, gated, ..." }),
            ("d_sae", new Option<int>("--d-sae") { Description = "Number of latents" }),
            ("k", new Option<int>("--k") { Description = "Latents per row (topk, batchtopk)" }),
            ("l1_coefficient", new Option<double>("--l1-coefficient") { Description = "L1 (standard, gated) or L0 (jumprelu) coefficient" }),
            ("lr", new Option<double>("--lr") { Description = "Learning rate" }),
            ("steps", new Option<long>("--steps") { Description = "Optimiser steps (default 1000; not with --epochs)" }),
            ("epochs", new Option<int>("--epochs") { Description = "drrik fit mode: passes over the activations, with a validation split; writes epochs.jsonl" }),
            ("validation_fraction", new Option<double>("--validation-fraction") { Description = "Fit mode: last fraction of rows held out for validation (default 0.1)" }),
            ("batch_size", new Option<int>("--batch-size") { Description = "Rows per step" }),
            ("seed", new Option<ulong>("--seed") { Description = "Seed of every random choice" }),
        };
        train.Add(activations); train.Add(config); train.Add(output); train.Add(resume); train.Add(set);
        foreach (var (_, o) in flags) train.Add(o);
        train.SetAction(p =>
        {
            var settingsFromFlags = new List<KeyValuePair<string, Setting>>();
            foreach (var (key, flag) in flags)
            {
                var r = p.GetResult(flag);
                if (r is not null && r.Tokens.Count > 0) settingsFromFlags.Add(new(key, new Setting(r.Tokens[0].Value, flag.Name)));
            }
            settingsFromFlags.AddRange(ConfigSources.FromAssignments(p.GetValue(set)));
            string outDir = p.GetValue(resume) ?? p.GetValue(output)!;
            var defaults = p.GetValue(resume) is { } runDir ? TrainRun.LoadSettings(runDir) : new TrainSettings();
            var settings = ConfigSources.Load(defaults, "train", p.GetValue(config), settingsFromFlags);
            var path = p.GetValue(activations) ?? throw new ArgumentException("--activations is required (a [n, d_in] .npy file)");
            var data = Npy.ReadFloat32(path);
            if (data.Rank != 2) throw new InvalidDataException($"{path}: expected a 2-D [n, d_in] array, got [{data.ShapeString}]");
            var o = p.InvocationConfiguration.Output;
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                var meta = new Dictionary<string, string> { ["dataset_path"] = Path.GetFullPath(path) };
                var result = Progress.Run($"{settings.Architecture} d_sae={settings.DSae}", o, settings.MetricsEvery,
                    report => settings.FitMode
                        ? TrainRun.ExecuteFit(settings, data, outDir, cts.Token, report, meta)
                        : TrainRun.Execute(settings, new InMemoryActivationSource(data, settings.Seed + 1), outDir, cts.Token, report, meta));
                if (result.Summary.Interrupted)
                {
                    o.WriteLine($"interrupted at step {result.Summary.Steps}; checkpoint written. Continue with: saesharp train --resume {outDir} --activations {path}");
                    return 130;
                }
                o.WriteLine($"trained {result.Summary.Steps} steps ({result.Summary.TokensSeen:N0} rows) in {result.Elapsed.TotalSeconds:F1} s; " +
                            $"L0 {result.Summary.LastMetrics.GetValueOrDefault("l0"):F2}, explained variance {result.Summary.LastMetrics.GetValueOrDefault("explained_variance"):F4}, dead {result.Summary.DeadLatents}");
                if (result.Summary.LastEpoch is { } e)
                    o.WriteLine(TrainRun.DescribeEpoch(e));
                o.WriteLine($"saved to {Path.GetFullPath(outDir)}");
            }
            return 0;
        });
        return train;
    }
}
