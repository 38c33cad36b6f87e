using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp train`: train an SAE (or a sweep of SAEs on one stream) on activations from a .npy matrix, an activation cache, or a model run over a dataset.</summary>
public static class TrainCommands
{
    public static Command Build()
    {
        var train = new Command("train", "Train a sparse autoencoder or transcoder (or a sweep of them on one stream); writes cfg.json, sae_weights.safetensors, sparsity.safetensors, metrics.jsonl and checkpoints");
        var activations = new Option<string?>("--activations") { Description = "Activations as a [n, d_in] .npy file (drrik's activations.npy)" };
        var cache = new Option<string?>("--cache") { Description = "Activation cache folder written by `saesharp cache` (a paired one for transcoders)" };
        var model = new ModelOption("Stream activations from this model (Hugging Face folder or llama2.c .bin) run over --dataset; several, comma-separated, train one SAE each with the same settings and seed, into --out/<model folder name>", required: false);
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset for --model (.txt one document per line, .jsonl 'text' field, or a folder)" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized token file for --model, instead of --dataset" };
        var sweep = new Option<string?>("--sweep") { Description = "YAML sweep: top-level settings shared, 'saes:' one entry per SAE (name: {settings}); all train on one stream, each into --out/name" };
        var output = new Option<string>("--out") { Description = "Run folder (a sweep's: one run folder per SAE inside)", DefaultValueFactory = _ => "runs/train" };
        var resume = new Option<string?>("--resume") { Description = "Continue the run (or sweep) in this folder from its latest checkpoint (same settings and data)" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the run already in --out instead of refusing" };
        var allowPartial = new Option<bool>("--allow-partial-cache") { Description = "Train on a cache whose writing was interrupted (its finished shards); refused otherwise" };
        var settingOptions = TrainSettingOptions.Create(
            ("hook_name", new Option<string>("--hook") { Description = "Hook to train on with --model, e.g. blocks.2.hook_resid_post; several, comma-separated, are concatenated per position" }),
            ("hook_name_out", new Option<string>("--target-hook") { Description = "A transcoder's target hook from the same forward, e.g. blocks.1.hook_mlp_out (with --hook blocks.1.ln2.hook_normalized)" }),
            ("epochs", new Option<int>("--epochs") { Description = "drrik fit mode: passes over --activations, with a validation split; writes epochs.jsonl" }),
            ("validation_fraction", new Option<double>("--validation-fraction") { Description = "Fit mode: last fraction of rows held out for validation (default 0.1)" }),
            ("context_size", new Option<int>("--context-size") { Description = "With --model: tokens per context window (default 128)" }));
        foreach (var o in new Option[] { activations, cache, allowPartial, dataset, tokensFile, sweep, output, resume, overwrite }) train.Add(o);
        model.AddTo(train);
        settingOptions.AddTo(train);
        train.SetAction(p =>
        {
            string? resumeDir = p.GetValue(resume);
            if (resumeDir is not null && p.GetValue(overwrite)) throw new ArgumentException("give --resume or --overwrite, not both");
            if (resumeDir is not null && p.GetResult(output) is { Tokens.Count: > 0 }) throw new ArgumentException("--resume names the run folder; leave out --out");
            string outDir = resumeDir ?? p.GetValue(output)!;
            var mode = resumeDir is not null ? RunFolderMode.Resume : p.GetValue(overwrite) ? RunFolderMode.Overwrite : RunFolderMode.New;
            var models = (p.GetValue(model.Model) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            string? hubDirectory = models.Count == 0 ? null : ModelOption.HubDirectory();
            TrainData Open(TrainSettings stream, IReadOnlyList<TrainSettings> saes, string? modelPath) =>
                TrainInputs.Open(stream, saes, Compute.All, p.GetValue(activations), p.GetValue(cache), modelPath, p.GetValue(dataset),
                    p.GetValue(tokensFile), p.GetValue(allowPartial), p.GetValue(model.Revision), hubDirectory);
            string resumeHint = $"saesharp train --resume {outDir} {SourceArgs(p, activations, cache, model.Model, model.Revision, dataset, tokensFile)}";
            if (models.Count > 1)
            {
                if (p.GetValue(sweep) is not null) throw new ArgumentException("--sweep trains several SAEs on one model; give one --model with it");
                return TrainSeriesOf(p, settingOptions, models, outDir, mode, resumeHint, (s, m) => Open(s, [s], m));
            }
            var o = p.InvocationConfiguration.Output;
            var reporter = Progress.For(o);
            bool isSweep = p.GetValue(sweep) is not null || (resumeDir is not null && SweepRun.HoldsSweep(resumeDir));
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                if (isSweep)
                {
                    var (shared, saes) = SweepSettings(p, settingOptions, p.GetValue(sweep), resumeDir);
                    var data = Open(shared, [.. saes.Select(m => m.Settings)], models.FirstOrDefault());
                    var result = reporter.Track($"sweep of {saes.Count} SAEs", saes.Min(m => m.Settings.MetricsEvery),
                        report => SweepRun.Execute(shared, saes, data, outDir, Compute.All, mode, reporter, cts.Token, report));
                    if (result.Interrupted)
                    {
                        o.WriteLine($"interrupted at step {result.Results[0].Summary.Steps}; checkpoints written. Continue with: {resumeHint}");
                        return 130;
                    }
                    foreach (var line in SweepRun.Describe(result)) o.WriteLine(line);
                }
                else
                {
                    var settings = settingOptions.Bind(p, resumeDir is not null ? TrainRun.LoadSettings(resumeDir) : new TrainSettings());
                    var data = Open(settings, [settings], models.FirstOrDefault());
                    var result = reporter.Track($"{settings.Architecture} d_sae={settings.DSae}", settings.MetricsEvery,
                        report => TrainRun.Execute(settings, data, outDir, Compute.All, mode, reporter, cts.Token, report));
                    if (result.Summary.Interrupted)
                    {
                        o.WriteLine($"interrupted at step {result.Summary.Steps}; checkpoint written. Continue with: {resumeHint}");
                        return 130;
                    }
                    o.WriteLine(TrainRun.DescribeResult(result));
                    if (result.Summary.LastEpoch is { } e) o.WriteLine(TrainRun.DescribeEpoch(e));
                }
                o.WriteLine($"saved to {Path.GetFullPath(outDir)}");
            }
            return 0;
        });
        return train;
    }

    /// <summary>
    /// A sweep's shared settings and SAEs: from the sweep file (its top level in the place of --config, then the
    /// environment, flags and --set; each SAE's entries on top), or on a resume from the sweep folder with the flags
    /// applied to every SAE (so a changed setting shows as a difference).
    /// </summary>
    private static (TrainSettings Shared, List<SweepMember> Saes) SweepSettings(ParseResult p, SettingOptions<TrainSettings> options, string? sweepFile, string? resumeDir)
    {
        if (sweepFile is not null)
        {
            var (top, entries) = ConfigSources.FromSweepYaml(sweepFile);
            var shared = options.Bind(p, new TrainSettings(), top);
            return (shared, SweepRun.Members(shared, entries));
        }
        var (recorded, saes) = SweepRun.Load(resumeDir!);
        return (options.Bind(p, recorded), [.. saes.Select(m => m with { Settings = options.Bind(p, m.Settings) })]);
    }

    /// <summary>
    /// Several models: one run each into OUT/&lt;model folder name&gt;/ (<see cref="TrainSeries"/>); --resume names the
    /// series' folder, whose first run folder holds the settings.
    /// </summary>
    private static int TrainSeriesOf(ParseResult p, SettingOptions<TrainSettings> settingOptions, List<string> models, string outDir, RunFolderMode mode,
        string resumeHint, Func<TrainSettings, string, TrainData> open)
    {
        var saved = mode == RunFolderMode.Resume ? models.Select(m => TrainSeries.RunFolder(outDir, m)).FirstOrDefault(d => File.Exists(Path.Combine(d, TrainRun.SettingsFile))) : null;
        if (mode == RunFolderMode.Resume && saved is null) throw new InvalidOperationException($"{outDir} holds no run of these models to resume");
        var settings = settingOptions.Bind(p, saved is not null ? TrainRun.LoadSettings(saved) : new TrainSettings());
        var o = p.InvocationConfiguration.Output;
        var (cts, reg) = Progress.InterruptToken();
        using (reg)
        {
            var results = TrainSeries.Execute(settings, models, m => open(settings, m), outDir, Compute.All, mode, Progress.For(o), cts.Token);
            foreach (var r in results.Where(r => !r.Summary.Interrupted)) o.WriteLine($"{Path.GetFileName(r.OutputDir)}: {TrainRun.DescribeResult(r)}");
            if (results.Count > 0 && results[^1].Summary.Interrupted)
            {
                o.WriteLine($"interrupted at step {results[^1].Summary.Steps} of {results[^1].OutputDir}; checkpoint written. Continue with: {resumeHint}");
                return 130;
            }
            o.WriteLine($"saved {models.Count} runs under {Path.GetFullPath(outDir)}");
        }
        return 0;
    }

    /// <summary>The data options as given, to repeat in the resume hint.</summary>
    private static string SourceArgs(ParseResult p, params Option<string?>[] options) =>
        string.Join(" ", options.Where(o => p.GetValue(o) is not null).Select(o => $"{o.Name} {p.GetValue(o)}"));

    private static string SourceArgs(ParseResult p, Option<string?> activations, Option<string?> cache, Option<string> model, Option<string?> revision,
        Option<string?> dataset, Option<string?> tokensFile) =>
        string.Join(" ", new[] { SourceArgs(p, activations, cache), p.GetValue(model) is { } m ? $"--model {m}" : "", SourceArgs(p, revision, dataset, tokensFile) }
            .Where(s => s.Length > 0));
}
