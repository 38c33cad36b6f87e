using System.CommandLine;
using SaeSharp.Cli.Runs;
using SaeSharp.Data;
using SaeSharp.IO;
using Setting = SaeSharp.IO.ConfigBinder.Setting;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp train`: train an SAE on activations from a .npy matrix, an activation cache, or a model run over a dataset.</summary>
public static class TrainCommands
{
    public static Command Build()
    {
        var train = new Command("train", "Train a sparse autoencoder; writes cfg.json, sae_weights.safetensors, sparsity.safetensors, metrics.jsonl and checkpoints");
        var activations = new Option<string?>("--activations") { Description = "Activations as a [n, d_in] .npy file (drrik's activations.npy)" };
        var cache = new Option<string?>("--cache") { Description = "Activation cache folder written by `saesharp cache`" };
        var model = new Option<string?>("--model") { Description = "Stream activations from this model (Hugging Face folder or llama2.c .bin) run over --dataset" };
        var hook = new Option<string?>("--hook") { Description = "Hook to train on with --model, e.g. blocks.2.hook_resid_post" };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset for --model (.txt one document per line, .jsonl 'text' field, or a folder)" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized token file for --model, instead of --dataset" };
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
            ("steps", new Option<long>("--steps") { Description = "Optimiser steps" }),
            ("batch_size", new Option<int>("--batch-size") { Description = "Rows per step" }),
            ("seed", new Option<ulong>("--seed") { Description = "Seed of every random choice" }),
        };
        foreach (var o in new Option[] { activations, cache, model, hook, dataset, tokensFile }) train.Add(o);
        train.Add(config); train.Add(output); train.Add(resume); train.Add(set);
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
            var (source, metadata, sourceArgs) = TrainInputs.Open(settings, p.GetValue(activations), p.GetValue(cache), p.GetValue(model), p.GetValue(hook),
                p.GetValue(dataset), p.GetValue(tokensFile));
            var o = p.InvocationConfiguration.Output;
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                var result = Progress.Run($"{settings.Architecture} d_sae={settings.DSae}", o, settings.MetricsEvery,
                    report => TrainRun.Execute(settings, source, outDir, cts.Token, report, metadata));
                if (result.Summary.Interrupted)
                {
                    o.WriteLine($"interrupted at step {result.Summary.Steps}; checkpoint written. Continue with: saesharp train --resume {outDir} {sourceArgs}");
                    return 130;
                }
                o.WriteLine($"trained {result.Summary.Steps} steps ({result.Summary.TokensSeen:N0} rows) in {result.Elapsed.TotalSeconds:F1} s; " +
                            $"L0 {result.Summary.LastMetrics.GetValueOrDefault("l0"):F2}, explained variance {result.Summary.LastMetrics.GetValueOrDefault("explained_variance"):F4}, dead {result.Summary.DeadLatents}");
                o.WriteLine($"saved to {Path.GetFullPath(outDir)}");
            }
            return 0;
        });
        return train;
    }
}
