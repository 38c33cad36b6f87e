using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.Evals;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Runs;

/// <summary>
/// Settings of `saesharp eval` (snake_case names, bound from YAML, SAESHARP_EVAL__* variables, --set and flags). The
/// context keys are a training run's: contexts are built as `train --model` builds them, and
/// store_batch_size_prompts contexts make one eval batch (SAELens's eval batch_size_prompts defaults to it).
/// </summary>
public sealed record EvalSettings
{
    /// <summary>Context windows and model batching (context_size, prepend_bos, sequence_separator_token, store_batch_size_prompts).</summary>
    [SettingsGroup]
    public ContextSettings Contexts { get; set; } = new();
    /// <summary>Token budget: whole contexts up to this many tokens are evaluated; 0 = every context of the dataset.</summary>
    public long Tokens { get; set; } = 262_144;
    /// <summary>Leave BOS/EOS (and pad_token_id) positions out of the splice, the ablation and every metric, as SAELens does.</summary>
    public bool ExcludeSpecialTokens { get; set; } = true;
    /// <summary>A pad token to exclude as well.</summary>
    public int? PadTokenId { get; set; }
    /// <summary>zero or mean: what replaces the hook in the ablated run (mean: over the eval positions, one extra partial pass).</summary>
    public string Ablation { get; set; } = "zero";
    /// <summary>The hook of SAEs whose cfg.json metadata names none (e.g. trained on a .npy array).</summary>
    public string? HookName { get; set; }
    /// <summary>Per-latent weight statistics (norms, biases, encoder/decoder and max cosines).</summary>
    public bool ComputeFeaturewiseWeightBasedMetrics { get; set; } = true;

    public Ablation AblationKind() => Ablation switch
    {
        "zero" => Evals.Ablation.Zero,
        "mean" => Evals.Ablation.Mean,
        _ => throw new ArgumentException($"ablation: expected zero or mean, got '{Ablation}'"),
    };

    public void Validate()
    {
        Contexts.Validate();
        if (Tokens < 0) throw new ArgumentException($"tokens must be non-negative (0 = the whole dataset), got {Tokens}");
        if (Tokens > 0 && Tokens < Contexts.ContextSize) throw new ArgumentException($"tokens ({Tokens}) is less than one context of context_size {Contexts.ContextSize}");
        AblationKind();
    }
}

/// <summary>The outcome of <see cref="EvalRun.Execute"/>.</summary>
public sealed record EvalRunResult(IReadOnlyList<SaeEvalResult> Results, long Contexts, long Tokens, string OutputDir, TimeSpan Elapsed);

/// <summary>
/// `saesharp eval` end to end: loads the model and SAEs, batches the dataset into contexts as SAELens does, evaluates
/// every SAE in one pass (<see cref="SaeEvaluator"/>) and writes <c>eval.json</c> (settings, token counts, metrics by
/// group per SAE), <c>eval.csv</c> (a row per SAE) and <c>feature_stats.safetensors</c> (per-feature arrays named
/// <c>{sae}/{metric}</c>), then prints a table.
/// </summary>
public static class EvalRun
{
    public const string JsonFile = "eval.json";
    public const string CsvFile = "eval.csv";
    public const string FeatureStatsFile = "feature_stats.safetensors";

    /// <summary>The headline metrics the console table shows.</summary>
    public static readonly string[] TableMetrics =
        ["l0", "explained_variance", "mse", "ce_loss_score", "kl_div_score", "ce_loss_with_sae", "ce_loss_without_sae", "ce_loss_with_ablation"];

    public static EvalRunResult Execute(EvalSettings s, string modelPath, IReadOnlyList<string> saeDirs, string? dataset, string? tokensFile,
        string outDir, IRunReporter reporter, Compute compute, CancellationToken cancel = default)
    {
        s.Validate();
        if (saeDirs.Count == 0) throw new ArgumentException("give at least one --sae folder");
        var clock = Stopwatch.StartNew();
        var model = HookedTransformer.Load(modelPath, compute);
        var saes = LoadSaes(model, saeDirs, compute, s.HookName);
        int context = s.Contexts.ContextSize, batchSize = s.Contexts.StoreBatchSizePrompts;
        foreach (var sae in saes)
            if (sae.Sae.Config.Metadata["context_size"] is JsonValue v && v.TryGetValue(out int trained) && trained != context)
                reporter.WriteLine($"note: {sae.Name} was trained on contexts of {trained} tokens; evaluating on {context} (context_size)");
        var contexts = ModelInputs.ContextWindows(tokensFile, dataset, modelPath, model.Config, s.Contexts, s.Tokens);

        var exclude = s.ExcludeSpecialTokens ? ActivationStore.SpecialTokens(model.Config, s.PadTokenId).Distinct().ToArray() : [];
        var options = new EvalOptions { ExcludeTokens = exclude, Ablation = s.AblationKind(), WeightMetrics = s.ComputeFeaturewiseWeightBasedMetrics };
        var evaluator = new SaeEvaluator(model, saes, options, compute);
        if (options.Ablation == Evals.Ablation.Mean) evaluator.EstimateMeans(contexts, batchSize);
        int batches = (contexts.Count + batchSize - 1) / batchSize;
        reporter.Track($"eval {saes.Count} SAE{(saes.Count == 1 ? "" : "s")}", Math.Max(1, batches / 10), report =>
        {
            var timer = Stopwatch.StartNew();
            evaluator.AddAll(contexts, batchSize, n =>
            {
                var (l0, ev, ce) = evaluator.Progress(0);
                report(new TrainProgress(n, batches, ce, l0, ev, evaluator.Seen.Tokens / Math.Max(1e-9, timer.Elapsed.TotalSeconds)));
            }, cancel);
            return 0;
        });
        var results = evaluator.Results();
        Directory.CreateDirectory(outDir);
        var settingsJson = ConfigBinder.ToJson(s);
        var inputs = new JsonObject
        {
            ["model_path"] = Path.GetFullPath(modelPath),
            ["dataset_path"] = Path.GetFullPath(dataset ?? tokensFile!),
            ["excluded_tokens"] = new JsonArray([.. exclude.Select(t => (JsonNode)t)]),
            ["contexts"] = evaluator.Seen.Contexts,
            ["tokens"] = evaluator.Seen.Tokens,
        };
        WriteJson(Path.Combine(outDir, JsonFile), settingsJson, inputs, results, saeDirs);
        WriteCsv(Path.Combine(outDir, CsvFile), results, saeDirs);
        WriteFeatureStats(Path.Combine(outDir, FeatureStatsFile), results);
        PrintTable(reporter, results);
        reporter.WriteLine($"{evaluator.Seen.Contexts:N0} contexts of {context} tokens ({evaluator.Seen.Tokens:N0} tokens) in {clock.Elapsed.TotalSeconds:F1} s; wrote {Path.GetFullPath(outDir)}");
        return new EvalRunResult(results, evaluator.Seen.Contexts, evaluator.Seen.Tokens, outDir, clock.Elapsed);
    }

    /// <summary>The SAEs of <paramref name="dirs"/> placed in the model, named by folder (a suffix -2, -3 ... where folder names repeat).</summary>
    public static List<HookedSae> LoadSaes(HookedTransformer model, IReadOnlyList<string> dirs, Compute compute, string? fallbackHook = null)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        var saes = new List<HookedSae>();
        foreach (var dir in dirs)
        {
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"--sae: '{dir}' is not a folder");
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
            string unique = name;
            for (int i = 2; !used.Add(unique); i++) unique = $"{name}-{i}";
            saes.Add(HookedSae.Load(model, dir, compute, unique, fallbackHook));
        }
        return saes;
    }

    private static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    private static void WriteJson(string path, JsonObject settings, JsonObject inputs, IReadOnlyList<SaeEvalResult> results, IReadOnlyList<string> dirs)
    {
        var list = new JsonArray();
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            var c = r.Sae.Sae.Config;
            var metrics = new JsonObject();
            foreach (var (group, values) in r.Metrics)
            {
                var g = new JsonObject();
                foreach (var (k, v) in values) g[k] = Number(v);
                metrics[group] = g;
            }
            list.Add(new JsonObject
            {
                ["name"] = r.Sae.Name,
                ["path"] = Path.GetFullPath(dirs[i]),
                ["architecture"] = c.Architecture,
                ["d_in"] = c.DIn,
                ["d_sae"] = c.DSae,
                ["hook_name"] = r.Sae.Site.InputHook,
                ["hook_head_index"] = r.Sae.Site.InputHeadIndex,
                ["hook_name_out"] = r.Sae.Site.OutputHook,
                ["metrics"] = metrics,
            });
        }
        var root = new JsonObject { ["settings"] = settings, ["inputs"] = inputs, ["saes"] = list };
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static void WriteCsv(string path, IReadOnlyList<SaeEvalResult> results, IReadOnlyList<string> dirs)
    {
        var columns = results[0].Metrics.SelectMany(g => g.Value.Keys).ToList();
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", new[] { "sae", "path", "architecture", "d_sae", "hook_name" }.Concat(columns)));
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            var cells = new List<string> { Csv(r.Sae.Name), Csv(Path.GetFullPath(dirs[i])), r.Sae.Sae.Config.Architecture,
                r.Sae.Sae.Config.DSae.ToString(CultureInfo.InvariantCulture), Csv(r.Sae.Site.InputHook) };
            cells.AddRange(columns.Select(k => r.Metrics.Values.FirstOrDefault(g => g.ContainsKey(k))?[k] is double v
                ? v.ToString("R", CultureInfo.InvariantCulture) : ""));
            sb.AppendLine(string.Join(",", cells));
        }
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    private static void WriteFeatureStats(string path, IReadOnlyList<SaeEvalResult> results)
    {
        var w = new SafetensorsWriter();
        w.AddMetadata("saes", string.Join(",", results.Select(r => r.Sae.Name)));
        foreach (var r in results)
            foreach (var (name, values) in r.FeatureMetrics)
                w.Add($"{r.Sae.Name}/{name}", Tensor.FromArray(values, values.Length));
        w.Write(path);
    }

    public static void PrintTable(IRunReporter o, IReadOnlyList<SaeEvalResult> results)
    {
        var header = new[] { "SAE", "hook", "d_sae" }.Concat(TableMetrics).ToArray();
        var rows = results.Select(r => new[] { r.Sae.Name, r.Sae.Site.OutputHook, r.Sae.Sae.Config.DSae.ToString(CultureInfo.InvariantCulture) }
            .Concat(TableMetrics.Select(m => r[m].ToString(m == "l0" ? "F2" : "F4", CultureInfo.InvariantCulture))).ToArray()).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Max(r => r[i].Length))).ToArray();
        string Line(IReadOnlyList<string> cells) => string.Join("  ", cells.Select((c, i) => i < 2 ? c.PadRight(widths[i]) : c.PadLeft(widths[i])));
        o.WriteLine(Line(header));
        o.WriteLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (var r in rows) o.WriteLine(Line(r));
    }
}
