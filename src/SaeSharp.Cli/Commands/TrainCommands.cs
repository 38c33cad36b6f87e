using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Training;
using System.Text.Json.Nodes;

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
        var hook = new Option<string?>("--hook") { Description = "Hook to train on with --model, e.g. blocks.2.hook_resid_post; several, comma-separated, are concatenated per position" };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset for --model (.txt one document per line, .jsonl 'text' field, or a folder)" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized token file for --model, instead of --dataset" };
        var output = new Option<string>("--out") { Description = "Run folder", DefaultValueFactory = _ => "runs/train" };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder from its latest checkpoint" };
        var settingOptions = new TrainSettingOptions(
            ("epochs", new Option<int>("--epochs") { Description = "drrik fit mode: passes over --activations, with a validation split; writes epochs.jsonl" }),
            ("validation_fraction", new Option<double>("--validation-fraction") { Description = "Fit mode: last fraction of rows held out for validation (default 0.1)" }));
        foreach (var o in new Option[] { activations, cache, model, hook, dataset, tokensFile }) train.Add(o);
        train.Add(output); train.Add(resume);
        settingOptions.AddTo(train);
        train.SetAction(p =>
        {
            string outDir = p.GetValue(resume) ?? p.GetValue(output)!;
            var defaults = p.GetValue(resume) is { } runDir ? TrainRun.LoadSettings(runDir) : new TrainSettings();
            var settings = settingOptions.Bind(p, defaults);
            Func<Action<TrainProgress>, CancellationToken, TrainRunResult> execute;
            string sourceArgs;
            if (settings.FitMode)
            {
                // drrik's fit mode holds the whole array: it needs the rows themselves, not a stream.
                if (p.GetValue(cache) is not null || p.GetValue(model) is not null)
                    throw new ArgumentException("epochs (fit mode) trains on an in-memory array: give --activations FILE.npy, not --cache or --model");
                string path = p.GetValue(activations) ?? throw new ArgumentException("epochs (fit mode) needs --activations FILE.npy");
                var data = TrainInputs.ReadActivations(path);
                var meta = new JsonObject { ["dataset_path"] = Path.GetFullPath(path) };
                sourceArgs = $"--activations {path}";
                execute = (report, cancel) => TrainRun.ExecuteFit(settings, data, outDir, cancel, report, meta);
            }
            else
            {
                var (source, metadata, args) = TrainInputs.Open(settings, p.GetValue(activations), p.GetValue(cache), p.GetValue(model), p.GetValue(hook),
                    p.GetValue(dataset), p.GetValue(tokensFile));
                sourceArgs = args;
                execute = (report, cancel) => TrainRun.Execute(settings, source, outDir, cancel, report, metadata);
            }
            var o = p.InvocationConfiguration.Output;
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                var result = Progress.Run($"{settings.Architecture} d_sae={settings.DSae}", o, settings.MetricsEvery, report => execute(report, cts.Token));
                if (result.Summary.Interrupted)
                {
                    o.WriteLine($"interrupted at step {result.Summary.Steps}; checkpoint written. Continue with: saesharp train --resume {outDir} {sourceArgs}");
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
