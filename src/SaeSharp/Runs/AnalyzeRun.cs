using System.Diagnostics;
using SaeSharp.Analysis;
using SaeSharp.Data;
using SaeSharp.Evals;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Runs;

/// <summary>
/// Settings of `saesharp analyze` (snake_case names, bound from YAML, SAESHARP_ANALYZE__* variables, --set and flags).
/// Contexts are built as `train --model` and `eval` build them; the per-latent amounts are SAEDashboard's defaults.
/// </summary>
public sealed record AnalyzeSettings
{
    /// <summary>Context windows and model batching (context_size, prepend_bos, sequence_separator_token, store_batch_size_prompts).</summary>
    [SettingsGroup]
    public ContextSettings Contexts { get; set; } = new();
    /// <summary>What is collected per latent (top_examples, context_tokens, quantile_groups, quantile_examples, histogram_bins, logit_tokens, logit_histogram_bins, seed).</summary>
    [SettingsGroup]
    public FeatureAnalysisOptions Analysis { get; set; } = new();
    /// <summary>Which latents the report shows and whether the figures are written.</summary>
    [SettingsGroup]
    public ReportSettings Report { get; set; } = new();
    /// <summary>Token budget: whole contexts up to this many tokens are analysed; 0 = every context of the dataset.</summary>
    public long Tokens { get; set; } = 262_144;
    /// <summary>Leave BOS/EOS (and pad_token_id) positions out of every statistic, as SAEDashboard's ignore_tokens.</summary>
    public bool ExcludeSpecialTokens { get; set; } = true;
    /// <summary>A pad token to exclude as well.</summary>
    public int? PadTokenId { get; set; }
    /// <summary>The hook of an SAE whose cfg.json metadata names none.</summary>
    public string? HookName { get; set; }
    public void Validate()
    {
        Contexts.Validate();
        Report.Validate();
        Analysis.Validate();
        if (Tokens < 0) throw new ArgumentException($"tokens must be non-negative (0 = the whole dataset), got {Tokens}");
        if (Tokens > 0 && Tokens < Contexts.ContextSize) throw new ArgumentException($"tokens ({Tokens}) is less than one context of context_size {Contexts.ContextSize}");
    }
}

/// <summary>What `saesharp analyze` reads: a model over text or pretokenized tokens, or drrik-style per-document activations.</summary>
public sealed record AnalyzeInputs
{
    public required string SaeDir { get; init; }
    public string? ModelPath { get; init; }
    public string? Dataset { get; init; }
    public string? TokensFile { get; init; }
    /// <summary>A `saesharp extract` folder (activations.npy + metadata.json): one row per document.</summary>
    public string? Activations { get; init; }
}

/// <summary>The outcome of <see cref="AnalyzeRun.Execute"/>: the analysis, the store and report it wrote.</summary>
public sealed record AnalyzeRunResult(FeatureAnalysis Analysis, string StorePath, ReportRunResult Report, TimeSpan Elapsed);

/// <summary>
/// `saesharp analyze` end to end: loads the SAE (and the model), runs the feature analysis in one streaming pass
/// (<see cref="FeatureAnalyzer"/>), writes the feature store <c>features.db</c>, then the report and figures from the
/// store. A folder that already holds an analysis is refused unless overwriting.
/// </summary>
public static class AnalyzeRun
{
    /// <summary>Files and folders an analysis writes (an overwrite removes exactly these).</summary>
    private static readonly string[] OutputFiles = [FeatureStore.FileName, ReportRun.ReportFile];

    public static AnalyzeRunResult Execute(AnalyzeSettings s, AnalyzeInputs inputs, string outDir, bool overwrite, IRunReporter reporter, Compute compute,
        CancellationToken cancel = default)
    {
        s.Validate();
        var clock = Stopwatch.StartNew();
        if (!Directory.Exists(inputs.SaeDir)) throw new DirectoryNotFoundException($"--sae: '{inputs.SaeDir}' is not a folder");
        if (inputs.Activations is not null && (inputs.Dataset is not null || inputs.TokensFile is not null))
            throw new ArgumentException("give --activations (one activation per document) or --dataset/--tokens-file (a model run over text), not both");
        PrepareFolder(outDir, overwrite, reporter);
        var analyzer = new FeatureAnalyzer(s.Analysis, compute) { SpillDirectory = outDir };
        var model = inputs.ModelPath is null ? null : HookedTransformer.Load(inputs.ModelPath, compute);
        var tokenizer = inputs.ModelPath is null ? null : TryTokenizer(inputs.ModelPath, reporter);
        FeatureAnalysis analysis;
        string? datasetPath;
        if (inputs.Activations is not null)
        {
            var (rows, meta) = DocumentExtraction.Load(inputs.Activations);
            var sae = SaeFiles.Load(inputs.SaeDir, compute);
            reporter.WriteLine($"analysing {SaeName(inputs.SaeDir)} over {rows.Rows:N0} documents of {inputs.Activations}");
            analysis = analyzer.AnalyzeRows(sae, SaeName(inputs.SaeDir), rows, meta.Samples, meta.Hooks, model, tokenizer, cancel);
            datasetPath = Path.GetFullPath(inputs.Activations);
        }
        else
        {
            if (model is null) throw new ArgumentException("give --model (the SAE runs on its activations over --dataset or --tokens-file), or --activations");
            var sae = HookedSae.Load(model, inputs.SaeDir, compute, fallbackHook: s.HookName);
            int context = s.Contexts.ContextSize, batchSize = s.Contexts.StoreBatchSizePrompts;
            var contexts = ModelInputs.ContextWindows(inputs.TokensFile, inputs.Dataset, inputs.ModelPath!, model.Config, s.Contexts, s.Tokens);
            var exclude = s.ExcludeSpecialTokens ? ActivationStore.SpecialTokens(model.Config, s.PadTokenId).Distinct().ToArray() : [];
            int batches = (contexts.Count + batchSize - 1) / batchSize;
            reporter.WriteLine($"analysing {sae.Name} ({sae.Sae.Config.Architecture}, d_sae {sae.Sae.Config.DSae}) at {sae.Site.InputHook} over {contexts.Count:N0} contexts of {context} tokens");
            analysis = reporter.Track($"analyze {sae.Name}", Math.Max(1, batches / 10), report =>
            {
                var timer = Stopwatch.StartNew();
                // The progress line's loss is the reconstruction MSE.
                return analyzer.Analyze(model, sae, contexts, batchSize, exclude, tokenizer, p =>
                    report(new TrainProgress(p.Batches, batches, p.Mse, p.L0, p.ExplainedVariance, p.Positions / Math.Max(1e-9, timer.Elapsed.TotalSeconds))), cancel);
            });
            datasetPath = Path.GetFullPath(inputs.Dataset ?? inputs.TokensFile!);
        }
        analysis = new FeatureAnalysis
        {
            Summary = analysis.Summary with
            {
                SaePath = Path.GetFullPath(inputs.SaeDir), ModelPath = inputs.ModelPath is null ? null : Path.GetFullPath(inputs.ModelPath),
                DatasetPath = datasetPath, Settings = ConfigBinder.ToJson(s),
            },
            Features = analysis.Features,
        };
        string storePath = Path.Combine(outDir, FeatureStore.FileName);
        FeatureStore.Write(storePath, analysis);
        var metrics = Path.Combine(inputs.SaeDir, "metrics.jsonl");
        ReportRunResult report;
        using (var store = FeatureStore.Open(storePath))
            report = ReportRun.Write(s.Report, store, outDir, File.Exists(metrics) ? metrics : null, reporter);
        var m = analysis.Summary.Metrics;
        reporter.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{analysis.Summary.Positions:N0} positions: L0 {m["l0"]:F2}, explained variance {m["explained_variance"]:F4}, dead latents {m["dead_latents"]:N0} of {analysis.Summary.DSae:N0}; wrote {Path.GetFullPath(storePath)} in {clock.Elapsed.TotalSeconds:F1} s"));
        return new AnalyzeRunResult(analysis, storePath, report, clock.Elapsed);
    }

    private static string SaeName(string dir) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));

    private static Text.ITokenizer? TryTokenizer(string modelPath, IRunReporter reporter)
    {
        try { return Text.Tokenizers.Load(Directory.Exists(modelPath) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath))!); }
        catch (FileNotFoundException e)
        {
            reporter.WriteLine($"note: no tokenizer ({e.Message}); examples show token ids");
            return null;
        }
    }

    private static void PrepareFolder(string outDir, bool overwrite, IRunReporter reporter)
    {
        bool holds = File.Exists(Path.Combine(outDir, FeatureStore.FileName));
        if (holds && !overwrite)
            throw new InvalidOperationException($"{outDir} already holds an analysis ({FeatureStore.FileName}); give --overwrite to replace it (or choose another --out)");
        if (holds)
        {
            foreach (var f in OutputFiles) File.Delete(Path.Combine(outDir, f));
            if (Directory.Exists(Path.Combine(outDir, ReportRun.FiguresFolder))) Directory.Delete(Path.Combine(outDir, ReportRun.FiguresFolder), recursive: true);
            reporter.WriteLine($"overwriting the analysis in {outDir}");
        }
        Directory.CreateDirectory(outDir);
    }
}
