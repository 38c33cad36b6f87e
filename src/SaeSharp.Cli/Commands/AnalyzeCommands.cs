using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp analyze` (feature analysis into a feature store, with its report) and `saesharp report` (a report from a store or a training run).</summary>
public static class AnalyzeCommands
{
    private static (string Key, Option Option)[] ReportFlags() =>
    [
        ("report_features", new Option<int>("--features") { Description = "Latents with a dashboard in report.html and the figures (default 10)" }),
        ("report_features_by", new Option<string>("--features-by") { Description = "Pick them by density (default), max_activation or mean_activation" }),
        ("dashboards", new Option<string>("--dashboards") { Description = "Comma-separated latents to show instead, e.g. 3,17,42" }),
        ("figures", new Option<bool>("--figures") { Description = "Write drrik's save_all figures as PNG and SVG into figures/ (default true; --figures false to skip)" }),
    ];

    public static IEnumerable<Command> Build() => [BuildAnalyze(), BuildReport()];

    private static Command BuildAnalyze()
    {
        var cmd = new Command("analyze", "Feature analysis of an SAE in one streaming pass: per-latent density, activations, histograms, top examples with context, quantile groups, logit tables; writes features.db, report.html and figures/");
        var model = new Option<string?>("--model") { Description = "Model folder (Hugging Face) or llama2.c .bin whose activations the SAE reads; with --activations only for logit tables and token strings" };
        var sae = new Option<string>("--sae") { Description = "SAE folder (cfg.json + sae_weights.safetensors)", Required = true };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset (.txt one document per line, .jsonl 'text' field, or a folder), encoded with the model's tokenizer" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized safetensors token file, instead of --dataset" };
        var activations = new Option<string?>("--activations") { Description = "A `saesharp extract` folder (activations.npy + metadata.json): one activation per document, instead of a model run" };
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/analyze" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the analysis already in --out instead of refusing" };
        var settingOptions = new SettingOptions<AnalyzeSettings>("analyze",
        [
            ("tokens", new Option<long>("--tokens") { Description = "Tokens to analyse, in whole contexts (default 262144; 0 = the whole dataset)" }),
            .. ContextOptions.Flags(),
            ("hook_name", new Option<string>("--hook") { Description = "Hook of an SAE whose cfg.json names none" }),
            .. ReportFlags(),
        ])
        { Validate = s => s.Validate() };
        foreach (var o in new Option[] { model, sae, dataset, tokensFile, activations, output, overwrite }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var settings = settingOptions.Bind(p, new AnalyzeSettings());
            var inputs = new AnalyzeInputs
            {
                SaeDir = p.GetValue(sae)!, ModelPath = p.GetValue(model), Dataset = p.GetValue(dataset), TokensFile = p.GetValue(tokensFile), Activations = p.GetValue(activations),
            };
            var (cts, reg) = Progress.InterruptToken();
            using (reg) AnalyzeRun.Execute(settings, inputs, p.GetValue(output)!, p.GetValue(overwrite), Progress.For(p.InvocationConfiguration.Output), Compute.All, cts.Token);
            return 0;
        });
        return cmd;
    }

    private static Command BuildReport()
    {
        var cmd = new Command("report", "report.html and drrik's save_all figures (PNG and SVG) from a feature store (--store), or the training report of a run folder (--run)");
        var store = new Option<string?>("--store") { Description = "A feature store (features.db) written by `saesharp analyze`" };
        var run = new Option<string?>("--run") { Description = "A training run folder: report.html and training_curves.png/.svg from its metrics.jsonl" };
        var output = new Option<string?>("--out") { Description = "Output folder for --store (default: the store's folder)" };
        var metrics = new Option<string?>("--metrics") { Description = "With --store: a metrics.jsonl for the training-curves figure" };
        var settingOptions = new SettingOptions<ReportSettings>("report", ReportFlags()) { Validate = s => s.Validate() };
        foreach (var o in new Option[] { store, run, output, metrics }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var reporter = Progress.For(p.InvocationConfiguration.Output);
            string? storePath = p.GetValue(store), runDir = p.GetValue(run);
            if ((storePath is null) == (runDir is null)) throw new ArgumentException("give --store (a features.db) or --run (a training run folder)");
            if (runDir is not null) ReportRun.FromTrainingRun(runDir, reporter);
            else
                ReportRun.FromStore(settingOptions.Bind(p, new ReportSettings()), storePath!, p.GetValue(output) ?? Path.GetDirectoryName(Path.GetFullPath(storePath!))!,
                    p.GetValue(metrics), reporter);
            return 0;
        });
        return cmd;
    }
}
