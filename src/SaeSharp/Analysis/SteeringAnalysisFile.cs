using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.IO;

namespace SaeSharp.Analysis;

/// <summary>
/// drrik's saved steering analysis: <c>steering_analysis[_{label}]_{yyyyMMdd_HHmmss}.txt</c> (the prompt, a rule of 80
/// '=', then per result "--- label ---", its text, a blank line and a rule of 40 '-'), and beside it the same stem as
/// <c>.json</c> with the results and everything needed to run them again. A name already taken gets _2, _3 ...
/// so no analysis is overwritten.
/// </summary>
public static class SteeringAnalysisFile
{
    /// <summary>Writes both files into <paramref name="outputDir"/> (created if absent) and returns the text file's path.</summary>
    public static string Write(string outputDir, string prompt, string featureLabel, IReadOnlyDictionary<string, string> results, JsonObject details, DateTime now)
    {
        Directory.CreateDirectory(outputDir);
        string stem = $"steering_analysis{(featureLabel.Length > 0 ? "_" + featureLabel : "")}_{now.ToString("yyyyMMdd_HHmmss", CultureInfo.InvariantCulture)}";
        string name = stem;
        for (int i = 2; File.Exists(Path.Combine(outputDir, name + ".txt")) || File.Exists(Path.Combine(outputDir, name + ".json")); i++) name = $"{stem}_{i}";
        string textPath = Path.Combine(outputDir, name + ".txt");
        var json = new JsonObject
        {
            ["prompt"] = prompt,
            ["feature_label"] = featureLabel,
            ["created"] = now.ToString("yyyy-MM-ddTHH:mm:ss", CultureInfo.InvariantCulture),
            ["text_file"] = name + ".txt",
            ["results"] = new JsonObject(results.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        };
        foreach (var (k, v) in details) json[k] = v?.DeepClone();
        AtomicFile.WriteAllText(textPath, Text(prompt, results));
        AtomicFile.WriteAllText(Path.Combine(outputDir, name + ".json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        return textPath;
    }

    /// <summary>The text file's content (drrik's layout, '\n' line ends).</summary>
    public static string Text(string prompt, IReadOnlyDictionary<string, string> results)
    {
        var sb = new StringBuilder();
        sb.Append("Prompt: ").Append(prompt).Append('\n');
        sb.Append('=', 80).Append("\n\n");
        foreach (var (label, text) in results)
        {
            sb.Append("--- ").Append(label).Append(" ---\n");
            sb.Append(text).Append("\n\n");
            sb.Append('-', 40).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// The JSON beside the text: the steering object's settings (SAE, hook, mode, positions, seed, sampler), the
    /// comparison's runs (tokens, text, KL per generated token, the promoted tokens' logit changes) and
    /// <paramref name="rerun"/> as given.
    /// </summary>
    public static JsonObject Describe(SaeSteering steering, SteeringComparison? comparison, JsonObject? rerun)
    {
        var site = steering.Sae.Site;
        var cfg = steering.Sae.Sae.Config;
        var o = new JsonObject
        {
            ["steering"] = new JsonObject
            {
                ["sae"] = steering.Sae.Name,
                ["architecture"] = cfg.Architecture,
                ["d_in"] = cfg.DIn,
                ["d_sae"] = cfg.DSae,
                ["hook_name"] = site.OutputHook,
                ["hook_head_index"] = site.OutputHeadIndex,
                ["input_hook_name"] = site.InputHook,
                ["mode"] = ConfigBinder.SnakeCase(steering.Mode.ToString()),
                ["positions"] = ConfigBinder.SnakeCase(steering.Positions.ToString()),
                ["normalize"] = steering.Normalize,
                ["seed"] = steering.Seed,
                ["top_k"] = steering.TopK,
                ["stop_at_eos"] = steering.StopAtEos,
                ["use_kv_cache"] = steering.UseKvCache,
            },
        };
        if (comparison is not null)
        {
            o["prompt_tokens"] = Ints(comparison.Prompt);
            o["direction_tokens"] = new JsonArray([.. comparison.DirectionTokens.Select(t => (JsonNode)TokenJson(steering, t.Token, t.DirectionLogit))]);
            o["runs"] = new JsonArray([.. comparison.Runs.Select(r => (JsonNode)RunJson(steering, r))]);
        }
        if (rerun is not null) o["rerun"] = rerun.DeepClone();
        return o;
    }

    private static JsonObject RunJson(SaeSteering steering, SteeredGeneration run)
    {
        var o = new JsonObject
        {
            ["label"] = run.Label,
            ["strength"] = run.Strength,
            ["features"] = new JsonArray([.. (run.Intervention?.Features ?? []).Select(f => (JsonNode)new JsonObject { ["index"] = f.Index, ["strength"] = f.Strength })]),
            ["generated_tokens"] = Ints(run.Generated),
            ["text"] = run.Text,
        };
        if (run.Effects is { } e)
        {
            o["mean_kl"] = e.MeanKl;
            o["max_kl"] = e.MaxKl;
            o["kl_per_generated_token"] = Doubles(e.Kl);
            o["top_token_logit_changes"] = new JsonArray([.. e.TopTokens.Select(t =>
            {
                var j = TokenJson(steering, t.Token, t.DirectionLogit);
                j["mean_change"] = t.MeanChange;
                j["change_per_generated_token"] = Doubles(t.Change);
                return (JsonNode)j;
            })]);
        }
        return o;
    }

    private static JsonObject TokenJson(SaeSteering steering, int token, double directionLogit) =>
        new() { ["token"] = token, ["text"] = steering.TokenText(token), ["direction_logit"] = directionLogit };

    private static JsonArray Ints(IEnumerable<int> values) => new([.. values.Select(v => (JsonNode)v)]);

    private static JsonArray Doubles(IEnumerable<double> values) => new([.. values.Select(v => (JsonNode?)(double.IsFinite(v) ? JsonValue.Create(v) : null))]);
}
