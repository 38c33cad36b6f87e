using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SaeSharp.Analysis;
using SaeSharp.Data;
using SaeSharp.Evals;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Reports;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Runs;

/// <summary>
/// Settings of `saesharp match` (snake_case names, bound from YAML, SAESHARP_MATCH__* variables, --set and flags).
/// Contexts are built as `train --model` and `eval` build them.
/// </summary>
public sealed record MatchSettings
{
    /// <summary>Context windows and model batching (context_size, prepend_bos, sequence_separator_token, store_batch_size_prompts).</summary>
    [SettingsGroup]
    public ContextSettings Contexts { get; set; } = new();
    /// <summary>Token budget: whole contexts up to this many tokens are run; 0 = every context of the dataset.</summary>
    public long Tokens { get; set; } = 100_000;
    /// <summary>Activations whose magnitude is at or below this are dropped before the cosines (the notebook's 1e-6).</summary>
    public double SparsityThreshold { get; set; } = 1e-6;
    /// <summary>activations: cosine of latent activations over the tokens, each SAE run on its own checkpoint's model; decoder: cosine of W_dec rows (no data).</summary>
    public string By { get; set; } = "activations";
    /// <summary>Leave BOS/EOS (and pad_token_id) positions out of the tokens, as eval does.</summary>
    public bool ExcludeSpecialTokens { get; set; } = true;
    public int? PadTokenId { get; set; }
    /// <summary>A pair with distance 1 − cosine below this counts as matched (matched/unmatched counts, appearing features).</summary>
    public double DistanceThreshold { get; set; } = 0.5;
    /// <summary>Comma-separated distance thresholds of the fraction-matched table and figure.</summary>
    public string DistanceThresholds { get; set; } = "0.1,0.3,0.5,0.7,0.9";
    /// <summary>The checkpoint (run folder name or step) whose appearing features the report follows; unset: every checkpoint's.</summary>
    public string? AppearingAt { get; set; }
    /// <summary>Appearing features followed per checkpoint in the report (the closest matched ones first).</summary>
    public int ReportFeatures { get; set; } = 4;
    /// <summary>Top activating tokens shown per feature and checkpoint.</summary>
    public int TopExamples { get; set; } = 3;
    /// <summary>Write the figures (PNG and SVG) and match_report.html.</summary>
    public bool Report { get; set; } = true;

    public bool ByActivations => By == "activations";

    public double[] Thresholds()
    {
        var parts = DistanceThresholds.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !(values[i] > 0))
                throw new ArgumentException($"distance_thresholds: expected comma-separated positive numbers, got '{DistanceThresholds}'");
        if (values.Length == 0) throw new ArgumentException("distance_thresholds: give at least one threshold");
        return values;
    }

    public void Validate()
    {
        Contexts.Validate();
        if (By is not ("activations" or "decoder")) throw new ArgumentException($"by: expected activations or decoder, got '{By}'");
        if (Tokens < 0) throw new ArgumentException($"tokens must be non-negative (0 = the whole dataset), got {Tokens}");
        if (Tokens > 0 && Tokens < Contexts.ContextSize) throw new ArgumentException($"tokens ({Tokens}) is less than one context of context_size {Contexts.ContextSize}");
        if (!(SparsityThreshold >= 0)) throw new ArgumentException($"sparsity_threshold must be non-negative, got {SparsityThreshold}");
        if (!(DistanceThreshold > 0)) throw new ArgumentException($"distance_threshold must be positive, got {DistanceThreshold}");
        if (ReportFeatures < 0 || TopExamples < 0) throw new ArgumentException("report_features and top_examples must be non-negative");
        Thresholds();
    }
}

/// <summary>
/// One checkpoint of a match: its run folder, name (the folder's), training step (the name's trailing number), SAE,
/// final training losses (the mean of metrics.jsonl's last 10 lines), and with decoder matching its mean max cosine.
/// </summary>
public sealed record MatchCheckpoint(string Name, string Path, long? Step, Sae Sae, IReadOnlyDictionary<string, double> Losses)
{
    public double MeanMaxCosine { get; init; } = double.NaN;
    public TimeSpan MatchTime { get; init; }
}

/// <summary>The outcome of <see cref="MatchRun.Execute"/>: the series, its checkpoints, and the appearing latents per checkpoint (at distance_threshold).</summary>
public sealed record MatchRunResult(MatchSeries Series, IReadOnlyList<MatchCheckpoint> Checkpoints, IReadOnlyList<int[]> Appearing, double[] Thresholds,
    long Tokens, string OutputDir, TimeSpan Elapsed);

/// <summary>
/// `saesharp match` end to end, as the "Match SAE Features Through Training" notebook: every SAE's latent activations
/// on the same tokens, each computed with its own checkpoint's model (cfg.json metadata.model_path) and kept sparse,
/// matched to the reference SAE's latents by an optimal one-to-one assignment on 1 − cosine
/// (<see cref="FeatureMatching"/>), or data-free by decoder cosine. Writes <c>match.json</c>, <c>checkpoints.csv</c>,
/// <c>matches.csv</c>, <c>distances.safetensors</c>, the figures and <c>match_report.html</c>, and prints the table of
/// fraction matched per threshold with the appearing features per checkpoint.
/// </summary>
public static class MatchRun
{
    public const string JsonFile = "match.json";
    public const string CheckpointsFile = "checkpoints.csv";
    public const string MatchesFile = "matches.csv";
    public const string DistancesFile = "distances.safetensors";
    public const string FiguresFolder = "figures";

    public static MatchRunResult Execute(MatchSettings s, string reference, IReadOnlyList<string> runs, string? dataset, string? tokensFile,
        string outDir, IRunReporter reporter, Compute compute, CancellationToken cancel = default)
    {
        s.Validate();
        var clock = Stopwatch.StartNew();
        var thresholds = s.Thresholds();
        var (dirs, refColumn) = Columns(reference, runs);
        var checkpoints = Names(dirs).Select((name, c) => new MatchCheckpoint(name, Path.GetFullPath(dirs[c]), Step(name), SaeFiles.Load(dirs[c], compute), Losses(dirs[c]))).ToList();
        var refSae = checkpoints[refColumn].Sae;
        var matches = new FeatureMatch?[dirs.Count];
        TokenSet? tokens = null;
        SparseCodes[]? codes = null;
        if (s.ByActivations)
        {
            tokens = Tokens(s, checkpoints[refColumn], dataset, tokensFile, compute);
            codes = new SparseCodes[dirs.Count];
            for (int c = 0; c < dirs.Count; c++)
            {
                cancel.ThrowIfCancellationRequested();
                var timer = Stopwatch.StartNew();
                codes[c] = Activations(s, checkpoints[c], tokens, compute, cancel);
                reporter.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"activations of {checkpoints[c].Name}: {tokens.Count:N0} tokens in {timer.Elapsed.TotalSeconds:F1} s, L0 {codes[c].Count / (double)Math.Max(1, tokens.Count):F2}, {FeatureMatching.Dead(codes[c]).Count(d => d)} dead latents"));
            }
        }
        else if ((dataset ?? tokensFile) is not null) throw new ArgumentException("by decoder matches without data: leave out --dataset and --tokens-file");
        for (int c = 0; c < dirs.Count; c++)
        {
            if (c == refColumn) continue;
            cancel.ThrowIfCancellationRequested();
            var timer = Stopwatch.StartNew();
            var other = checkpoints[c].Sae;
            matches[c] = codes is not null ? FeatureMatching.ByActivations(codes[refColumn], codes[c], compute) : FeatureMatching.ByDecoders(refSae.WDec, other.WDec, compute);
            checkpoints[c] = checkpoints[c] with
            {
                MatchTime = timer.Elapsed,
                MeanMaxCosine = codes is null ? FeatureMatching.MeanMaxCosine(refSae.WDec, other.WDec, compute) : double.NaN,
            };
            reporter.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"matched {checkpoints[c].Name} to {checkpoints[refColumn].Name} in {timer.Elapsed.TotalSeconds:F1} s ({matches[c]!.Rounds} rounds, {matches[c]!.CandidatePairs:N0} candidate pairs)"));
        }
        var deadRef = codes is not null ? matches.First(m => m is not null)!.DeadReference : new bool[refSae.Config.DSae];
        var series = new MatchSeries(checkpoints.Select(c => c.Name).ToList(), refColumn, matches, deadRef);
        var decoderCos = Enumerable.Range(0, dirs.Count).Select(c => c == refColumn
            ? deadRef.Select(d => d ? double.NaN : 1.0).ToArray()
            : FeatureMatching.PairDecoderCosines(refSae.WDec, checkpoints[c].Sae.WDec, matches[c]!.Partner)).ToArray();
        var appearing = Enumerable.Range(0, dirs.Count).Select(c => series.Appearing(c, s.DistanceThreshold)).ToList();

        Directory.CreateDirectory(outDir);
        WriteDistances(Path.Combine(outDir, DistancesFile), series, decoderCos, checkpoints, thresholds);
        WriteMatches(Path.Combine(outDir, MatchesFile), series, decoderCos, s.DistanceThreshold);
        var table = Table(series, checkpoints, thresholds, appearing, s.DistanceThreshold);
        AtomicFile.WriteAllText(Path.Combine(outDir, CheckpointsFile), string.Join("\n", new[] { table.Header }.Concat(table.Rows).Select(r => string.Join(",", r.Select(Csv)))) + "\n");
        var result = new MatchRunResult(series, checkpoints, appearing, thresholds, tokens?.Count ?? 0, outDir, clock.Elapsed);
        WriteJson(Path.Combine(outDir, JsonFile), s, result, decoderCos, dataset ?? tokensFile, tokens);
        if (s.Report) WriteReport(outDir, s, result, decoderCos, codes, tokens, table, clock.Elapsed);
        foreach (var line in FormatTable(table.Header, table.Rows)) reporter.WriteLine(line);
        reporter.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{dirs.Count} checkpoints, {refSae.Config.DSae:N0} reference latents{(tokens is null ? ", by decoder" : $", {tokens.Count:N0} tokens")}; matched in {clock.Elapsed.TotalSeconds:F1} s; wrote {Path.GetFullPath(outDir)}"));
        return result with { Elapsed = clock.Elapsed };
    }

    /// <summary>The run folders in column order (the runs as given, then the reference unless it is one of them) and the reference's column.</summary>
    private static (List<string> Dirs, int RefColumn) Columns(string reference, IReadOnlyList<string> runs)
    {
        foreach (var d in runs.Append(reference))
            if (!Directory.Exists(d)) throw new DirectoryNotFoundException($"'{d}' is not a folder (expected an SAE run folder with cfg.json)");
        var dirs = runs.ToList();
        int refColumn = dirs.FindIndex(d => Path.GetFullPath(d) == Path.GetFullPath(reference));
        if (refColumn < 0) { dirs.Add(reference); refColumn = dirs.Count - 1; }
        if (dirs.Count < 2) throw new ArgumentException("give at least one --run besides the --reference");
        if (dirs.Select(Path.GetFullPath).Distinct().Count() != dirs.Count) throw new ArgumentException("a run is given twice");
        return (dirs, refColumn);
    }

    /// <summary>Folder names, with -2, -3 ... where they repeat.</summary>
    private static List<string> Names(IReadOnlyList<string> dirs)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        var names = new List<string>();
        foreach (var d in dirs)
        {
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(d)));
            string unique = name;
            for (int i = 2; !used.Add(unique); i++) unique = $"{name}-{i}";
            names.Add(unique);
        }
        return names;
    }

    private static long? Step(string name) =>
        Regex.Match(name, @"(\d+)$") is { Success: true } m && long.TryParse(m.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : null;

    /// <summary>Mean of every *_loss over the last 10 lines of a run's metrics.jsonl; empty without one.</summary>
    private static Dictionary<string, double> Losses(string dir)
    {
        string path = Path.Combine(dir, "metrics.jsonl");
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        if (!File.Exists(path)) return result;
        var lines = File.ReadLines(path).Where(l => l.Trim().Length > 0).TakeLast(10).ToList();
        foreach (var line in lines)
        {
            JsonObject? o;
            try { o = JsonNode.Parse(line) as JsonObject; } catch (JsonException) { continue; }
            foreach (var (k, v) in o ?? [])
                if (k.EndsWith("_loss", StringComparison.Ordinal) && v is JsonValue jv && jv.TryGetValue(out double x))
                    result[k] = result.GetValueOrDefault(k) + x / lines.Count;
        }
        return result;
    }

    /// <summary>The matching tokens: contexts of the reference's model over the dataset, and per kept position its (context, position).</summary>
    private sealed record TokenSet(List<int[]> Contexts, List<(int Context, int Position)> Positions, TransformerConfig Model, string ModelPath)
    {
        public long Count => Positions.Count;
    }

    private static string ModelPath(MatchCheckpoint c)
    {
        var v = c.Sae.Config.Metadata["model_path"];
        string? path = v is JsonValue jv && jv.TryGetValue(out string? p) ? p : null;
        if (path is null) throw new InvalidDataException($"{Path.Combine(c.Path, SaeFiles.ConfigFile)}: metadata.model_path is missing; match --by activations runs each SAE on the model it was trained on (train it with `saesharp train --model`)");
        if (!Directory.Exists(path) && !File.Exists(path)) throw new FileNotFoundException($"{Path.Combine(c.Path, SaeFiles.ConfigFile)}: metadata.model_path '{path}' does not exist", path);
        return path;
    }

    private static TokenSet Tokens(MatchSettings s, MatchCheckpoint reference, string? dataset, string? tokensFile, Compute compute)
    {
        string modelPath = ModelPath(reference);
        var model = HookedTransformer.Load(modelPath, compute);
        var docs = ModelInputs.Documents(tokensFile, dataset, modelPath, addBos: false); // the batcher places BOS
        var windows = ModelInputs.Contexts(docs, model.Config, s.Contexts);
        if (s.Tokens > 0) windows = windows.Take((int)Math.Min(int.MaxValue, s.Tokens / s.Contexts.ContextSize));
        var contexts = windows.ToList();
        if (contexts.Count == 0)
            throw new InvalidDataException($"{dataset ?? tokensFile}: no context of {s.Contexts.ContextSize} tokens (the dataset holds fewer tokens than one context)");
        var exclude = Excluded(s, model.Config);
        var positions = new List<(int, int)>();
        for (int c = 0; c < contexts.Count; c++)
            for (int p = 0; p < contexts[c].Length; p++) if (!exclude.Contains(contexts[c][p])) positions.Add((c, p));
        return new TokenSet(contexts, positions, model.Config, modelPath);
    }

    private static HashSet<int> Excluded(MatchSettings s, TransformerConfig model) =>
        s.ExcludeSpecialTokens ? [.. ActivationStore.SpecialTokens(model, s.PadTokenId)] : [];

    /// <summary>One SAE's latent codes at the kept positions, run on its own checkpoint's model; entries at or below the sparsity threshold dropped.</summary>
    private static SparseCodes Activations(MatchSettings s, MatchCheckpoint checkpoint, TokenSet tokens, Compute compute, CancellationToken cancel)
    {
        var model = HookedTransformer.Load(ModelPath(checkpoint), compute);
        if (model.Config.VocabSize != tokens.Model.VocabSize || model.Config.BosTokenId != tokens.Model.BosTokenId || model.Config.EosTokenId != tokens.Model.EosTokenId)
            throw new InvalidDataException($"{checkpoint.Path}: its model ({ModelPath(checkpoint)}) has another vocabulary or special tokens than the reference's ({tokens.ModelPath}); matching needs the same tokens");
        var hooked = new HookedSae(checkpoint.Name, checkpoint.Sae, SaeSite.For(model, checkpoint.Sae.Config, Path.Combine(checkpoint.Path, SaeFiles.ConfigFile)));
        var stream = new LatentStream(model, [hooked], Excluded(s, model.Config));
        var counts = new List<int>();
        var index = new List<int>();
        var value = new List<float>();
        foreach (var batch in stream.Stream(tokens.Contexts, s.Contexts.StoreBatchSizePrompts))
        {
            cancel.ThrowIfCancellationRequested();
            var f = batch.Saes[0].Forward;
            var rowCodes = f.Codes ?? SparseCodes.FromDense(f.Features!, compute);
            for (int r = 0; r < batch.Rows; r++)
            {
                if (!batch.Keep[r]) continue;
                int n = 0;
                for (int e = rowCodes.RowStart[r]; e < rowCodes.RowStart[r + 1]; e++)
                {
                    float v = rowCodes.Value[e];
                    if (!float.IsFinite(v)) throw new InvalidDataException($"{checkpoint.Path}: latent {rowCodes.Index[e]} has a non-finite activation");
                    if (Math.Abs(v) <= s.SparsityThreshold) continue;
                    index.Add(rowCodes.Index[e]);
                    value.Add(v);
                    n++;
                }
                counts.Add(n);
            }
        }
        if (counts.Count != tokens.Count) throw new InvalidOperationException($"{checkpoint.Name}: {counts.Count} positions kept, the reference's tokens have {tokens.Count}");
        var codes = SparseCodes.FromRowCounts(checkpoint.Sae.Config.DSae, [.. counts]);
        index.CopyTo(codes.Index);
        value.CopyTo(codes.Value);
        return codes;
    }

    private sealed record CheckpointTable(string[] Header, List<string[]> Rows);

    private static CheckpointTable Table(MatchSeries series, IReadOnlyList<MatchCheckpoint> checkpoints, double[] thresholds, IReadOnlyList<int[]> appearing, double threshold)
    {
        var header = new[] { "checkpoint", "step", "d_sae", "dead", "dead_reference", "matched", "unmatched" }
            .Concat(thresholds.Select(t => "frac<" + F(t))).Append("appearing").ToArray();
        var rows = new List<string[]>();
        for (int c = 0; c < checkpoints.Count; c++)
        {
            var k = series.Counts(c, threshold);
            var row = new List<string>
            {
                checkpoints[c].Name + (c == series.ReferenceColumn ? " (reference)" : ""), checkpoints[c].Step?.ToString(CultureInfo.InvariantCulture) ?? "",
                checkpoints[c].Sae.Config.DSae.ToString(CultureInfo.InvariantCulture), k.DeadOther.ToString(CultureInfo.InvariantCulture),
                k.DeadReference.ToString(CultureInfo.InvariantCulture), k.Matched.ToString(CultureInfo.InvariantCulture), k.Unmatched.ToString(CultureInfo.InvariantCulture),
            };
            row.AddRange(thresholds.Select(t => series.FractionMatched(c, t).ToString("0.000", CultureInfo.InvariantCulture)));
            row.Add(appearing[c].Length.ToString(CultureInfo.InvariantCulture));
            rows.Add([.. row]);
        }
        return new CheckpointTable(header, rows);
    }

    private static IEnumerable<string> FormatTable(string[] header, List<string[]> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Max(r => r[i].Length))).ToArray();
        string Line(IReadOnlyList<string> cells) => string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i])));
        yield return Line(header);
        yield return string.Join("  ", widths.Select(w => new string('-', w)));
        foreach (var r in rows) yield return Line(r);
    }

    private static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
    private static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    private static void WriteDistances(string path, MatchSeries series, double[][] decoderCos, IReadOnlyList<MatchCheckpoint> checkpoints, double[] thresholds)
    {
        int n = series.Latents, cols = checkpoints.Count;
        var distances = new Tensor(n, cols);
        var cosines = new Tensor(n, cols);
        var partners = new int[n * cols];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < cols; c++)
            {
                distances[i, c] = (float)series.Distance(i, c);
                cosines[i, c] = (float)decoderCos[c][i];
                partners[i * cols + c] = series.Partner(i, c);
            }
        new SafetensorsWriter()
            .AddMetadata("checkpoints", string.Join(",", checkpoints.Select(c => c.Name)))
            .AddMetadata("reference_column", series.ReferenceColumn.ToString(CultureInfo.InvariantCulture))
            .AddMetadata("distance_thresholds", string.Join(",", thresholds.Select(F)))
            .Add("distances", distances)
            .Add("decoder_cosine", cosines)
            .AddInt32("partners", partners, n, cols)
            .Write(path);
    }

    private static void WriteMatches(string path, MatchSeries series, double[][] decoderCos, double threshold)
    {
        var sb = new StringBuilder("checkpoint,reference_latent,latent,distance,decoder_cosine,status\n");
        for (int c = 0; c < series.Checkpoints.Count; c++)
            for (int i = 0; i < series.Latents; i++)
            {
                double d = series.Distance(i, c);
                int p = series.Partner(i, c);
                string status = series.DeadReference[i] ? "dead" : p < 0 ? "unassigned" : d < threshold ? "matched" : "unmatched";
                sb.Append(Csv(series.Checkpoints[c])).Append(',').Append(i).Append(',').Append(p < 0 ? "" : p.ToString(CultureInfo.InvariantCulture)).Append(',')
                  .Append(double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) : "").Append(',')
                  .Append(double.IsFinite(decoderCos[c][i]) ? decoderCos[c][i].ToString("R", CultureInfo.InvariantCulture) : "").Append(',').Append(status).Append('\n');
            }
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    private static void WriteJson(string path, MatchSettings s, MatchRunResult r, double[][] decoderCos, string? data, TokenSet? tokens)
    {
        var series = r.Series;
        var list = new JsonArray();
        for (int c = 0; c < r.Checkpoints.Count; c++)
        {
            var cp = r.Checkpoints[c];
            var k = series.Counts(c, s.DistanceThreshold);
            var fractions = new JsonObject();
            foreach (var t in r.Thresholds) fractions[F(t)] = series.FractionMatched(c, t);
            var matched = Enumerable.Range(0, series.Latents).Where(i => series.IsMatched(i, c, s.DistanceThreshold)).ToList();
            var losses = new JsonObject();
            foreach (var (name, v) in cp.Losses) losses[name] = Number(v);
            var m = series.Match(c);
            list.Add(new JsonObject
            {
                ["name"] = cp.Name,
                ["path"] = cp.Path,
                ["step"] = cp.Step,
                ["reference"] = c == series.ReferenceColumn,
                ["architecture"] = cp.Sae.Config.Architecture,
                ["d_sae"] = cp.Sae.Config.DSae,
                ["dead_latents"] = k.DeadOther,
                ["dead_reference_latents"] = k.DeadReference,
                ["matched"] = k.Matched,
                ["unmatched"] = k.Unmatched,
                ["fraction_matched"] = fractions,
                ["mean_matched_distance"] = Number(matched.Count == 0 ? double.NaN : matched.Average(i => series.Distance(i, c))),
                ["mean_matched_decoder_cosine"] = Number(matched.Count == 0 ? double.NaN : matched.Average(i => decoderCos[c][i])),
                ["mean_max_cosine"] = Number(cp.MeanMaxCosine),
                ["appearing"] = r.Appearing[c].Length,
                ["appearing_latents"] = new JsonArray([.. r.Appearing[c].Select(i => (JsonNode)i)]),
                ["assignment_rounds"] = m?.Rounds,
                ["assignment_candidate_pairs"] = m?.CandidatePairs,
                ["match_seconds"] = cp.MatchTime.TotalSeconds,
                ["sae_losses"] = losses,
            });
        }
        var root = new JsonObject
        {
            ["settings"] = ConfigBinder.ToJson(s),
            ["inputs"] = new JsonObject
            {
                ["reference"] = r.Checkpoints[series.ReferenceColumn].Path,
                ["dataset_path"] = data is null ? null : Path.GetFullPath(data),
                ["contexts"] = tokens?.Contexts.Count,
                ["tokens"] = tokens?.Count,
            },
            ["reference_column"] = series.ReferenceColumn,
            ["checkpoints"] = list,
            ["elapsed_seconds"] = r.Elapsed.TotalSeconds,
        };
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static void WriteReport(string outDir, MatchSettings s, MatchRunResult r, double[][] decoderCos, SparseCodes[]? codes, TokenSet? tokens,
        CheckpointTable table, TimeSpan elapsed)
    {
        var series = r.Series;
        int n = r.Checkpoints.Count, refColumn = series.ReferenceColumn;
        var labels = r.Checkpoints.Select(c => c.Step?.ToString(CultureInfo.InvariantCulture) ?? c.Name).ToList();
        var others = Enumerable.Range(0, n).Where(c => c != refColumn).ToList();
        var otherLabels = others.Select(c => labels[c]).ToList();
        string fig = Path.Combine(outDir, FiguresFolder);
        var figures = new List<(string, string)>();
        void Add(string stem, string caption) => figures.Add((FiguresFolder + "/" + stem, caption));

        const int Bins = 49;
        var live = Enumerable.Range(0, series.Latents).Where(i => !series.DeadReference[i] ).ToArray();
        var actHist = others.Select(c => FeatureMatching.Histogram(live.Where(i => series.Partner(i, c) >= 0).Select(i => 1 - series.Distance(i, c)), 0, 1, Bins)).ToList();
        MatchFigures.HistogramHeatmap(Path.Combine(fig, "activation_cosine_histograms"), otherLabels, actHist, 0, 1,
            s.ByActivations ? "Activation cosine similarity of matched latents through training" : "Decoder cosine similarity of matched latents through training",
            "cosine similarity", "reference latents");
        Add("activation_cosine_histograms", s.ByActivations
            ? "Histogram per checkpoint of the cosine similarity between each reference latent's activations and its partner's (1 − distance), log colour scale."
            : "Histogram per checkpoint of the decoder cosine similarity of each reference latent with its partner, log colour scale.");
        var decHist = others.Select(c => FeatureMatching.Histogram(live.Select(i => decoderCos[c][i]).Where(double.IsFinite), -1, 1, 2 * Bins)).ToList();
        MatchFigures.HistogramHeatmap(Path.Combine(fig, "decoder_cosine_histograms"), otherLabels, decHist, -1, 1,
            "Decoder cosine similarity of matched pairs through training", "decoder cosine similarity", "reference latents");
        Add("decoder_cosine_histograms", "Histogram per checkpoint of the cosine of each reference latent's decoder row with its partner's, log colour scale.");
        MatchFigures.FractionMatched(Path.Combine(fig, "fraction_matched"), otherLabels, r.Thresholds,
            r.Thresholds.Select(t => others.Select(c => series.FractionMatched(c, t)).ToArray()).ToList());
        Add("fraction_matched", "Fraction of the reference's latents whose partner lies within each distance threshold, per checkpoint.");
        var lossNames = r.Checkpoints.SelectMany(c => c.Losses.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        if (lossNames.Count > 0)
        {
            MatchFigures.Lines(Path.Combine(fig, "losses"), labels, lossNames.Select(k => (k, r.Checkpoints.Select(c => c.Losses.GetValueOrDefault(k, double.NaN)).ToArray())).ToList(),
                "SAE training losses per checkpoint", "loss (mean of the last 10 logged steps)");
            Add("losses", "Each checkpoint's SAE at the end of its training: the losses of metrics.jsonl (mean of its last 10 lines).");
        }
        var explained = r.Checkpoints.Select(c => c.Sae.Config.Metadata["final_explained_variance"] is JsonValue v && v.TryGetValue(out double x) ? x : double.NaN).ToArray();
        if (explained.Any(double.IsFinite))
        {
            MatchFigures.Lines(Path.Combine(fig, "explained_variance"), labels, [("explained variance", explained)],
                "SAE explained variance per checkpoint", "explained variance (cfg.json final_explained_variance)");
            Add("explained_variance", "The explained variance each checkpoint's SAE reached on its own model's activations at the end of training.");
        }
        var order = series.ByTotalDistance();
        var grid = new double[order.Length, n];
        for (int row = 0; row < order.Length; row++) for (int c = 0; c < n; c++) grid[row, c] = series.Distance(order[row], c);
        MatchFigures.DistanceHeatmap(Path.Combine(fig, "matched_distances"), labels, grid, "Matched feature distances", "reference latent (sorted by total distance)");
        Add("matched_distances", "Distance of every reference latent's partner at every checkpoint, latents sorted by their summed distance (dead latents grey, at the bottom).");

        var features = new List<MatchedFeatureView>();
        var columns = s.AppearingAt is null ? Enumerable.Range(1, n - 1) : [ColumnOf(s.AppearingAt, r.Checkpoints)];
        var tokenizer = tokens is null ? null : Text.Tokenizers.Load(Directory.Exists(tokens.ModelPath) ? tokens.ModelPath : Path.GetDirectoryName(Path.GetFullPath(tokens.ModelPath))!);
        var byColumn = new SparseColumns?[n];
        foreach (int col in columns)
        {
            var chosen = series.Appearing(col, s.DistanceThreshold)
                .OrderBy(i => Enumerable.Range(col, n - col).Sum(c => series.Distance(i, c))).Take(s.ReportFeatures);
            foreach (int i in chosen)
            {
                var steps = new List<MatchedFeatureStep>();
                for (int c = 0; c < n; c++)
                {
                    int partner = series.Partner(i, c);
                    var examples = new List<MatchExample>();
                    if (codes is not null && partner >= 0 && tokenizer is not null)
                    {
                        byColumn[c] ??= codes[c].ToColumns();
                        examples = TopExamples(byColumn[c]!, partner, s.TopExamples, tokens!, tokenizer);
                    }
                    steps.Add(new MatchedFeatureStep(labels[c], partner, series.Distance(i, c), decoderCos[c][i], examples));
                }
                features.Add(new MatchedFeatureView(i, $"appears at {r.Checkpoints[col].Name}", steps));
            }
        }
        var summary = new List<string>
        {
            $"Reference: {r.Checkpoints[refColumn].Path} ({series.Latents:N0} latents). " + (tokens is null
                ? "Matched by decoder cosine (no data)."
                : $"Matched by the cosine of latent activations over {tokens.Count:N0} tokens ({tokens.Contexts.Count:N0} contexts of {s.Contexts.ContextSize}), each SAE on its own checkpoint's model; activations at or below {F(s.SparsityThreshold)} dropped."),
            $"A reference latent counts as matched when its partner's distance 1 − cosine is below {F(s.DistanceThreshold)}; appearing: unmatched at every earlier checkpoint, matched at that one and every later one. Dead latents (no activation over the tokens) take no part in the assignment.",
            string.Create(CultureInfo.InvariantCulture, $"Wall time {elapsed.TotalSeconds:F1} s."),
        };
        MatchReport.Write(Path.Combine(outDir, MatchReport.FileName), new MatchReportData
        {
            Title = "SAE features matched through training",
            Summary = summary,
            TableHeader = table.Header,
            TableRows = table.Rows,
            Figures = figures,
            Features = features,
            FeaturesHeading = s.AppearingAt is null ? "Appearing features, per checkpoint" : $"Features appearing at {s.AppearingAt}",
        });
    }

    /// <summary>The column of a checkpoint given by name or step.</summary>
    public static int ColumnOf(string which, IReadOnlyList<MatchCheckpoint> checkpoints)
    {
        for (int c = 0; c < checkpoints.Count; c++)
            if (checkpoints[c].Name == which || checkpoints[c].Step?.ToString(CultureInfo.InvariantCulture) == which) return c;
        throw new ArgumentException($"appearing_at: no checkpoint named or at step '{which}' (checkpoints: {string.Join(", ", checkpoints.Select(c => c.Name))})");
    }

    /// <summary>The latent's largest activations over the tokens, each with up to 12 tokens before and 3 after.</summary>
    private static List<MatchExample> TopExamples(SparseColumns columns, int latent, int count, TokenSet tokens, Text.ITokenizer tokenizer)
    {
        var entries = Enumerable.Range(columns.ColStart[latent], columns.ColStart[latent + 1] - columns.ColStart[latent])
            .OrderByDescending(t => columns.Value[t]).Take(count);
        var result = new List<MatchExample>();
        foreach (int t in entries)
        {
            var (ctx, pos) = tokens.Positions[columns.Row[t]];
            var seq = tokens.Contexts[ctx];
            int from = Math.Max(0, pos - 12), to = Math.Min(seq.Length, pos + 4);
            result.Add(new MatchExample(tokenizer.Decode(seq.AsSpan(from, pos - from)), tokenizer.Decode(seq.AsSpan(pos, 1)),
                tokenizer.Decode(seq.AsSpan(pos + 1, to - pos - 1)), columns.Value[t]));
        }
        return result;
    }

    /// <summary>
    /// `saesharp match reorder`: the SAE of a matched run saved with its latents in the reference's order, from a match's
    /// output folder. New latent p is the run's partner of reference latent p (the optimal assignment, whatever its
    /// distance); slots without a partner (dead reference latents, or more latents than partners) take the run's
    /// unassigned latents in ascending order. The run needs at least as many latents as the reference.
    /// </summary>
    public static string Reorder(string matchDir, string run, string? outDir, IRunReporter reporter)
    {
        string jsonPath = Path.Combine(matchDir, JsonFile), distPath = Path.Combine(matchDir, DistancesFile);
        if (!File.Exists(jsonPath)) throw new FileNotFoundException($"{matchDir}: no {JsonFile} (not a `saesharp match` output folder)", jsonPath);
        var root = JsonNode.Parse(File.ReadAllText(jsonPath)) as JsonObject ?? throw new InvalidDataException($"{jsonPath}: expected a JSON object");
        var list = root["checkpoints"] as JsonArray ?? throw new InvalidDataException($"{jsonPath}: no 'checkpoints' list");
        int refColumn = (int?)root["reference_column"] ?? throw new InvalidDataException($"{jsonPath}: no 'reference_column'");
        var names = list.Select(c => (string?)c?["name"] ?? "").ToList();
        var paths = list.Select(c => (string?)c?["path"] ?? "").ToList();
        int column = paths.FindIndex(p => Directory.Exists(run) && p == Path.GetFullPath(run));
        if (column < 0) column = names.IndexOf(run);
        if (column < 0) throw new ArgumentException($"--run '{run}' is none of the match's checkpoints ({string.Join(", ", names)})");
        if (column == refColumn) throw new ArgumentException($"{names[column]} is the reference: its latents are already in the reference's order");
        using var f = SafetensorsFile.Open(distPath);
        var e = f.Entry("partners");
        if (e.Shape.Length != 2 || e.Shape[1] != list.Count) throw new InvalidDataException($"{distPath}: 'partners' has shape {e.ShapeString}, expected [latents, {list.Count}]");
        var partners = f.ReadInt32("partners");
        int latents = e.Shape[0];
        string source = paths[column];
        var config = SaeFiles.ConfigFromJson(File.ReadAllText(Path.Combine(source, SaeFiles.ConfigFile)), Path.Combine(source, SaeFiles.ConfigFile));
        if (config.DSae < latents)
            throw new ArgumentException($"{source}: {config.DSae} latents cannot take the order of the reference's {latents}; reorder needs at least as many latents as the reference");
        var order = new int[config.DSae];
        var used = new bool[config.DSae];
        Array.Fill(order, -1);
        for (int i = 0; i < latents; i++)
        {
            int p = partners[i * list.Count + column];
            if (p >= 0) { order[i] = p; used[p] = true; }
        }
        int next = 0;
        for (int i = 0; i < order.Length; i++)
        {
            if (order[i] >= 0) continue;
            while (used[next]) next++;
            order[i] = next;
            used[next] = true;
        }
        string target = outDir ?? Path.Combine(matchDir, "reordered", names[column]);
        SaeLatentOrder.Write(source, order, target, new JsonObject { ["reference"] = paths[refColumn], ["match"] = Path.GetFullPath(matchDir) });
        reporter.WriteLine($"wrote {names[column]} in the latent order of {names[refColumn]} to {Path.GetFullPath(target)}");
        return target;
    }
}
