using System.Globalization;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Evals;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Text;

namespace SaeSharp.Runs;

/// <summary>
/// Settings of `saesharp steer` (snake_case names, bound from YAML, SAESHARP_STEER__* variables, --set and flags).
/// Generation defaults are drrik's SAESteering's (50 tokens, temperature 0.8, top-p 0.9, random_seed 42).
/// </summary>
public sealed record SteerSettings
{
    /// <summary>
    /// The latents to steer with, comma-separated <c>index=strength</c> (add: the multiple of its decoder direction;
    /// clamp: the value it is set to); an index alone has strength 1 in add mode. Ablate takes indices only.
    /// </summary>
    public string Features { get; set; } = "";
    /// <summary>compare_steering's strengths, comma-separated: each run scales the whole intervention by one (0 = the unsteered model).</summary>
    public string Strengths { get; set; } = "0,1,2,3,5";
    public SteeringMode Mode { get; set; } = SteeringMode.Add;
    public SteeringPositions Positions { get; set; } = SteeringPositions.All;
    /// <summary>Add mode: unit-length decoder directions.</summary>
    public bool Normalize { get; set; }
    /// <summary>New tokens per run at most (drrik's max_new_tokens).</summary>
    public int MaxTokens { get; set; } = 50;
    public float Temperature { get; set; } = 0.8f;
    public float TopP { get; set; } = 0.9f;
    public int TopK { get; set; }
    public ulong Seed { get; set; } = 42;
    public bool StopAtEos { get; set; } = true;
    /// <summary>Steer at this hook instead of the SAE's cfg metadata hook_name (not for transcoders); needed when the cfg names none.</summary>
    public string? HookName { get; set; }
    /// <summary>How many of the direction's top output tokens the logit changes follow.</summary>
    public int TopOutputTokens { get; set; } = 5;

    /// <summary>The features as (index, strength); <c>explicitValues</c> tells which gave a strength.</summary>
    public (SteeringFeature[] Features, bool[] ExplicitValues) ParseFeatures()
    {
        var parts = Features.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("features: give at least one latent, as index=strength (e.g. 12=4.0), comma-separated or one --feature each");
        var features = new SteeringFeature[parts.Length];
        var explicitValues = new bool[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            var (index, value) = parts[i].IndexOf('=') is int eq and >= 0 ? (parts[i][..eq].Trim(), parts[i][(eq + 1)..].Trim()) : (parts[i], null);
            if (!int.TryParse(index, NumberStyles.None, CultureInfo.InvariantCulture, out int idx))
                throw new ArgumentException($"features: '{parts[i]}': '{index}' is not a latent index (a non-negative integer)");
            double strength = 1;
            if (value is not null && !double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out strength))
                throw new ArgumentException($"features: '{parts[i]}': strength '{value}' is not a number");
            if (!double.IsFinite(strength)) throw new ArgumentException($"features: '{parts[i]}': the strength must be finite");
            features[i] = new SteeringFeature(idx, strength);
            explicitValues[i] = value is not null;
        }
        return (features, explicitValues);
    }

    public double[] ParseStrengths()
    {
        var parts = Strengths.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("strengths: give at least one strength (e.g. 0,1,2,3,5)");
        return parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v
            : throw new ArgumentException($"strengths: '{p}' is not a finite number")).ToArray();
    }

    public void Validate()
    {
        var (_, explicitValues) = ParseFeatures();
        ParseStrengths();
        if (Mode == SteeringMode.Clamp && explicitValues.Contains(false))
            throw new ArgumentException("features: clamp sets each latent to a value; give every feature as index=value");
        if (Mode == SteeringMode.Ablate && explicitValues.Contains(true))
            throw new ArgumentException("features: ablate sets latents to 0; give indices only (no =value)");
        if (Normalize && Mode != SteeringMode.Add) throw new ArgumentException($"normalize applies to add mode only, not {ConfigBinder.SnakeCase(Mode.ToString())}");
        if (MaxTokens < 0) throw new ArgumentException($"max_tokens must be >= 0, got {MaxTokens}");
        if (TopOutputTokens < 0) throw new ArgumentException($"top_output_tokens must be >= 0, got {TopOutputTokens}");
        new SamplingOptions { Temperature = Temperature, TopK = TopK, TopP = TopP }.Validate();
    }
}

/// <summary>The outcome of <see cref="SteerRun.Execute"/>: the comparison and the analysis files written (null when none).</summary>
public sealed record SteerRunResult(SteeringComparison Comparison, string? AnalysisFile);

/// <summary>
/// `saesharp steer` end to end: loads the model, its tokenizer and the SAE (placed at its own hook, or hook_name),
/// runs compare_steering over the strengths at one seed, prints each run's text with its KL per generated token and
/// the logit changes of the tokens the direction promotes, and saves the analysis (drrik's text file and a JSON with
/// every setting, from which <see cref="Rerun"/> runs it again).
/// </summary>
public static class SteerRun
{
    public static SteerRunResult Execute(SteerSettings s, string modelPath, string saeDir, string prompt, string? tokenizerPath, string? outDir,
        IRunReporter reporter, Compute compute)
    {
        s.Validate();
        var steering = Open(modelPath, saeDir, tokenizerPath, s.HookName, compute, s);
        var (features, _) = s.ParseFeatures();
        var comparison = Compare(steering, s, prompt);
        Print(reporter, steering, s, comparison);
        string? file = null;
        if (outDir is not null)
        {
            var rerun = new JsonObject
            {
                ["model_path"] = Path.GetFullPath(modelPath),
                ["sae_path"] = Path.GetFullPath(saeDir),
                ["tokenizer_path"] = tokenizerPath is null ? null : Path.GetFullPath(tokenizerPath),
                ["prompt"] = prompt,
                ["settings"] = ConfigBinder.ToJson(s),
            };
            string label = (features.Length == 1 ? "feature_" : "features_") + string.Join("_", features.Select(f => f.Index));
            file = steering.SaveSteeringAnalysis(comparison, outDir, prompt, label, rerun);
            reporter.WriteLine($"wrote {file} and {Path.ChangeExtension(file, ".json")}");
        }
        return new SteerRunResult(comparison, file);
    }

    /// <summary>
    /// compare_steering of <paramref name="s"/>'s features and strengths on <paramref name="prompt"/>, with a steering
    /// object made by <see cref="Steering"/> from the same settings (mode, positions, seed, ...).
    /// </summary>
    /// <param name="completed">Called after each strength's run; <paramref name="cancel"/> is checked between runs.</param>
    public static SteeringComparison Compare(SaeSteering steering, SteerSettings s, string prompt, Action<SteeredGeneration>? completed = null,
        CancellationToken cancel = default)
    {
        s.Validate();
        var (features, _) = s.ParseFeatures();
        return steering.Compare(steering.EncodePrompt(prompt), features, s.ParseStrengths(), steering.Options(s.MaxTokens, s.Temperature, s.TopP), completed, cancel);
    }

    /// <summary>Runs a saved analysis (its JSON's <c>rerun</c> object) again; the texts come out the same.</summary>
    public static SteerRunResult Rerun(string analysisJson, string? outDir, IRunReporter reporter, Compute compute)
    {
        if (!File.Exists(analysisJson)) throw new FileNotFoundException($"steering analysis not found: {analysisJson}", analysisJson);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(analysisJson)); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{analysisJson}: not valid JSON: {e.Message}"); }
        if (root?["rerun"] is not JsonObject rerun) throw new InvalidDataException($"{analysisJson}: no 'rerun' object (not written by saesharp steer)");
        string Field(string key) => rerun[key] is JsonValue v && v.TryGetValue(out string? text) ? text
            : throw new InvalidDataException($"{analysisJson}: rerun.{key} must be a string");
        if (rerun["settings"] is not JsonObject settings) throw new InvalidDataException($"{analysisJson}: rerun.settings must be an object");
        var s = ConfigBinder.FromJson(new SteerSettings(), settings, analysisJson);
        string? tokenizer = rerun["tokenizer_path"] is null ? null : Field("tokenizer_path");
        return Execute(s, Field("model_path"), Field("sae_path"), Field("prompt"), tokenizer, outDir, reporter, compute);
    }

    /// <summary>
    /// A <see cref="SaeSteering"/> over the model at <paramref name="modelPath"/>, its tokenizer (or
    /// <paramref name="tokenizerPath"/>) and the SAE in <paramref name="saeDir"/> placed at <paramref name="hookName"/>
    /// or its cfg metadata's hook; <paramref name="settings"/> gives mode, positions and sampling (defaults when null).
    /// </summary>
    public static SaeSteering Open(string modelPath, string saeDir, string? tokenizerPath, string? hookName, Compute compute, SteerSettings? settings = null)
    {
        if (!Directory.Exists(saeDir)) throw new DirectoryNotFoundException($"--sae: '{saeDir}' is not a folder");
        var model = HookedTransformer.Load(modelPath, compute);
        var tokenizer = tokenizerPath is null ? Tokenizers.ForModel(modelPath) : Tokenizers.Load(tokenizerPath);
        return Steering(model, LoadSae(model, saeDir, hookName, compute), tokenizer, settings ?? new SteerSettings());
    }

    /// <summary>A <see cref="SaeSteering"/> over a loaded model, SAE and tokenizer with <paramref name="s"/>'s mode, positions, normalisation, seed, top-k and stop rule.</summary>
    public static SaeSteering Steering(HookedTransformer model, HookedSae sae, ITokenizer tokenizer, SteerSettings s) => new(model, sae, tokenizer)
    {
        Mode = s.Mode, Positions = s.Positions, Normalize = s.Normalize, Seed = s.Seed, TopK = s.TopK, StopAtEos = s.StopAtEos,
        TopOutputTokenCount = s.TopOutputTokens,
    };

    /// <summary>The SAE of <paramref name="dir"/> placed in the model at its cfg hook, or at <paramref name="hookName"/> when given.</summary>
    public static HookedSae LoadSae(HookedTransformer model, string dir, string? hookName, Compute compute)
    {
        if (hookName is null) return HookedSae.Load(model, dir, compute);
        var sae = SaeFiles.Load(dir, compute);
        if (sae.Config.IsTranscoder)
            throw new ArgumentException($"hook_name: {sae.Config.Architecture} reads and writes its own hooks (metadata.hook_name and hook_name_out); steer it there");
        var meta = (JsonObject)sae.Config.Metadata.DeepClone();
        meta["hook_name"] = hookName;
        string source = Path.Combine(dir, SaeFiles.ConfigFile);
        return new HookedSae(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))), sae, SaeSite.For(model, sae.Config with { Metadata = meta }, source));
    }

    private static string F(double v, string format = "F3") => v.ToString(format, CultureInfo.InvariantCulture);

    private static string Signed(double v) => (v >= 0 ? "+" : "") + F(v, "F2");

    private static void Print(IRunReporter o, SaeSteering steering, SteerSettings s, SteeringComparison c)
    {
        var sae = steering.Sae;
        string head = sae.Site.OutputHeadIndex is int h ? $" head {h}" : "";
        o.WriteLine($"SAE {sae.Name} ({sae.Sae.Config.Architecture}, d_sae {sae.Sae.Config.DSae}) at {sae.Site.OutputHook}{head}; mode {ConfigBinder.SnakeCase(s.Mode.ToString())}, " +
                    $"positions {ConfigBinder.SnakeCase(s.Positions.ToString())}{(s.Normalize ? ", unit directions" : "")}");
        o.WriteLine($"seed {s.Seed}, temperature {s.Temperature.ToString(CultureInfo.InvariantCulture)}, top-p {s.TopP.ToString(CultureInfo.InvariantCulture)}{(s.TopK > 0 ? $", top-k {s.TopK}" : "")}, up to {s.MaxTokens} new tokens; prompt {c.Prompt.Length} tokens");
        var norms = Ops.RowNorms(sae.Sae.WDec);
        foreach (var f in c.Runs[0].Intervention?.Features ?? [])
        {
            string what = s.Mode switch { SteeringMode.Add => $"strength {F(f.Strength, "G")}", SteeringMode.Clamp => $"clamped to {F(f.Strength, "G")}", _ => "ablated" };
            o.WriteLine($"feature {f.Index}: {what}, decoder norm {F(norms[f.Index])}");
        }
        if (c.DirectionTokens.Count > 0)
            o.WriteLine("direction's top tokens: " + string.Join(", ", c.DirectionTokens.Select(t => $"{Quote(steering, t.Token)} {F(t.DirectionLogit, "F2")}")));
        foreach (var run in c.Runs)
        {
            o.WriteLine($"--- {run.Label} ---");
            o.WriteLine(run.Text);
            if (run.Effects is not { } e || e.Kl.Length == 0) continue;
            o.WriteLine($"  KL(steered || unsteered) per generated token: mean {F(e.MeanKl)}, max {F(e.MaxKl)} nats: {string.Join(" ", e.Kl.Select(k => F(k, "F2")))}");
            if (e.TopTokens.Count > 0)
                o.WriteLine("  logit change of the direction's top tokens, mean over generated tokens: " +
                            string.Join(", ", e.TopTokens.Select(t => $"{Quote(steering, t.Token)} {Signed(t.MeanChange)}")));
        }
    }

    /// <summary>A token's vocabulary text in quotes, for tables.</summary>
    internal static string Quote(SaeSteering steering, int token) => "\"" + steering.TokenText(token) + "\"";
}
