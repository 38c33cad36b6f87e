using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp train`: train an SAE on activations from a .npy matrix, an activation cache, or a model run over a dataset.</summary>
public static class TrainCommands
{
    public static Command Build()
    {
        var train = new Command("train", "Train a sparse autoencoder; writes cfg.json, sae_weights.safetensors, sparsity.safetensors, metrics.jsonl and checkpoints");
        var activations = new Option<string?>("--activations") { Description = "Activations as a [n, d_in] .npy file (drrik's activations.npy)" };
        var cache = new Option<string?>("--cache") { Description = "Activation cache folder written by `saesharp cache`" };
        var model = new Option<string[]>("--model") { Description = "Stream activations from this model (Hugging Face folder or llama2.c .bin) run over --dataset; several (comma-separated or repeated) train one SAE each, with the same settings and seed, into OUT/<model folder name>/" };
        var hook = new Option<string?>("--hook") { Description = "Hook to train on with --model, e.g. blocks.2.hook_resid_post; several, comma-separated, are concatenated per position" };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset for --model (.txt one document per line, .jsonl 'text' field, or a folder)" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized token file for --model, instead of --dataset" };
        var output = new Option<string>("--out") { Description = "Run folder", DefaultValueFactory = _ => "runs/train" };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder from its latest checkpoint (same settings and data)" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the run already in --out instead of refusing" };
        var settingOptions = TrainSettingOptions.Create(
            ("epochs", new Option<int>("--epochs") { Description = "drrik fit mode: passes over --activations, with a validation split; writes epochs.jsonl" }),
            ("validation_fraction", new Option<double>("--validation-fraction") { Description = "Fit mode: last fraction of rows held out for validation (default 0.1)" }),
            ("context_size", new Option<int>("--context-size") { Description = "With --model: tokens per context window (default 128)" }));
        foreach (var o in new Option[] { activations, cache, model, hook, dataset, tokensFile, output, resume, overwrite }) train.Add(o);
        settingOptions.AddTo(train);
        train.SetAction(p =>
        {
            string? resumeDir = p.GetValue(resume);
            if (resumeDir is not null && p.GetValue(overwrite)) throw new ArgumentException("give --resume or --overwrite, not both");
            if (resumeDir is not null && p.GetResult(output) is { Tokens.Count: > 0 }) throw new ArgumentException("--resume names the run folder; leave out --out");
            string outDir = resumeDir ?? p.GetValue(output)!;
            var mode = resumeDir is not null ? RunFolderMode.Resume : p.GetValue(overwrite) ? RunFolderMode.Overwrite : RunFolderMode.New;
            var models = (p.GetValue(model) ?? []).SelectMany(m => m.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
            if (models.Count > 1) return TrainSeriesOf(p, settingOptions, models, outDir, mode, activations, cache, hook, dataset, tokensFile);
            var settings = settingOptions.Bind(p, resumeDir is not null ? TrainRun.LoadSettings(resumeDir) : new TrainSettings());
            var data = TrainInputs.Open(settings, Compute.All, p.GetValue(activations), p.GetValue(cache), models.FirstOrDefault(), p.GetValue(hook),
                p.GetValue(dataset), p.GetValue(tokensFile));
            var o = p.InvocationConfiguration.Output;
            var reporter = Progress.For(o);
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                var result = reporter.Track($"{settings.Architecture} d_sae={settings.DSae}", settings.MetricsEvery,
                    report => TrainRun.Execute(settings, data, outDir, Compute.All, mode, reporter, cts.Token, report));
                if (result.Summary.Interrupted)
                {
                    o.WriteLine($"interrupted at step {result.Summary.Steps}; checkpoint written. Continue with: saesharp train --resume {outDir} {SourceArgs(p, activations, cache, hook, dataset, tokensFile)}{ModelArg(models)}");
                    return 130;
                }
                o.WriteLine(TrainRun.DescribeResult(result));
                if (result.Summary.LastEpoch is { } e) o.WriteLine(TrainRun.DescribeEpoch(e));
                o.WriteLine($"saved to {Path.GetFullPath(outDir)}");
            }
            return 0;
        });
        return train;
    }

    /// <summary>
    /// Several models: one run each into OUT/&lt;model folder name&gt;/ (<see cref="TrainSeries"/>); --resume names the
    /// series' folder, whose first run folder holds the settings.
    /// </summary>
    private static int TrainSeriesOf(ParseResult p, SettingOptions<TrainSettings> settingOptions, List<string> models, string outDir, RunFolderMode mode,
        Option<string?> activations, Option<string?> cache, Option<string?> hook, Option<string?> dataset, Option<string?> tokensFile)
    {
        if (p.GetValue(activations) is not null || p.GetValue(cache) is not null) throw new ArgumentException("several --model folders train from their own activations: leave out --activations and --cache");
        var saved = mode == RunFolderMode.Resume ? models.Select(m => TrainSeries.RunFolder(outDir, m)).FirstOrDefault(d => File.Exists(Path.Combine(d, TrainRun.SettingsFile))) : null;
        if (mode == RunFolderMode.Resume && saved is null) throw new InvalidOperationException($"{outDir} holds no run of these models to resume");
        var settings = settingOptions.Bind(p, saved is not null ? TrainRun.LoadSettings(saved) : new TrainSettings());
        var o = p.InvocationConfiguration.Output;
        var (cts, reg) = Progress.InterruptToken();
        using (reg)
        {
            var results = TrainSeries.Execute(settings, models,
                m => TrainInputs.Open(settings, Compute.All, null, null, m, p.GetValue(hook), p.GetValue(dataset), p.GetValue(tokensFile)),
                outDir, Compute.All, mode, Progress.For(o), cts.Token);
            foreach (var r in results.Where(r => !r.Summary.Interrupted)) o.WriteLine($"{Path.GetFileName(r.OutputDir)}: {TrainRun.DescribeResult(r)}");
            if (results.Count > 0 && results[^1].Summary.Interrupted)
            {
                o.WriteLine($"interrupted at step {results[^1].Summary.Steps} of {results[^1].OutputDir}; checkpoint written. Continue with: saesharp train --resume {outDir} {SourceArgs(p, hook, dataset, tokensFile)}{ModelArg(models)}");
                return 130;
            }
            o.WriteLine($"saved {models.Count} runs under {Path.GetFullPath(outDir)}");
        }
        return 0;
    }

    private static string ModelArg(List<string> models) => models.Count == 0 ? "" : $" --model {string.Join(",", models)}";

    /// <summary>The data options as given, to repeat in the resume hint.</summary>
    private static string SourceArgs(ParseResult p, params Option<string?>[] options) =>
        string.Join(" ", options.Where(o => p.GetValue(o) is not null).Select(o => $"{o.Name} {p.GetValue(o)}"));
}
