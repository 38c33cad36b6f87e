using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using SaeSharp.Analysis;
using SaeSharp.IO;
using SaeSharp.Runs;

namespace SaeSharp.Server;

/// <summary>A request value that is malformed or out of range: answered 400 with the message.</summary>
public sealed class BadRequestException(string message) : Exception(message);

/// <summary>A feature-list page: which rows, sorted how, filtered how.</summary>
public sealed record FeatureListQuery(string Sort, bool Descending, int Offset, int Limit, double? MinDensity, double? MaxDensity, double? MinMaxActivation, bool HideDead)
{
    /// <summary>The query string that asks for this page (for links), with <paramref name="offset"/> and the sort replaced when given.</summary>
    public string QueryString(int? offset = null, string? sort = null, bool? descending = null)
    {
        var parts = new List<string>
        {
            $"sort={sort ?? Sort}", $"order={((descending ?? Descending) ? "desc" : "asc")}",
            $"offset={(offset ?? Offset).ToString(CultureInfo.InvariantCulture)}", $"limit={Limit.ToString(CultureInfo.InvariantCulture)}",
        };
        void Add(string key, double? v) { if (v is double d) parts.Add($"{key}={d.ToString("R", CultureInfo.InvariantCulture)}"); }
        Add("min_density", MinDensity);
        Add("max_density", MaxDensity);
        Add("min_max_activation", MinMaxActivation);
        if (HideDead) parts.Add("hide_dead=true");
        return string.Join("&", parts);
    }
}

/// <summary>A live text search: the text and the settings of drrik's find_steering_features.</summary>
public sealed record SearchRequest(string Text, PromptFeaturesSettings Settings);

/// <summary>A live steering comparison: the prompt and the steering settings.</summary>
public sealed record SteerRequest(string Prompt, SteerSettings Settings);

/// <summary>
/// Every request value is parsed here into numbers, names from fixed lists, or text; nothing a request sends is ever
/// used as a path. Anything malformed or outside the limits of <see cref="ServeSettings"/> is a
/// <see cref="BadRequestException"/> naming the value and what was expected.
/// </summary>
public static partial class Requests
{
    [GeneratedRegex("^[0-9]{1,9}$")]
    private static partial Regex IndexPattern();

    [GeneratedRegex("^[0-9a-f]{32}$")]
    private static partial Regex JobId();

    /// <summary>The store numbered <paramref name="raw"/>.</summary>
    public static ServedStore Store(ServeCatalog catalog, string? raw) =>
        catalog.Stores[Index(raw, catalog.Stores.Count, v => $"store '{v}': expected a store number from 0 to {catalog.Stores.Count - 1}")];

    /// <summary>The latent numbered <paramref name="raw"/> of <paramref name="store"/>.</summary>
    public static int Feature(ServedStore store, string? raw) =>
        Index(raw, store.DSae, v => $"feature '{v}': expected a latent index from 0 to {store.DSae - 1} (d_sae {store.DSae})");

    public static MatchOutput Match(ServeCatalog catalog, string? raw) =>
        catalog.Matches[Index(raw, catalog.Matches.Count, v => catalog.Matches.Count == 0 ? $"match '{v}': this server has no match output (give --match)"
            : $"match '{v}': expected a match number from 0 to {catalog.Matches.Count - 1}")];

    public static int ReferenceLatent(MatchOutput match, string? raw) =>
        Index(raw, match.ReferenceLatents, v => $"latent '{v}': expected a reference latent from 0 to {match.ReferenceLatents - 1}");

    /// <summary><paramref name="raw"/> as an index below <paramref name="count"/> (digits only), or a 400 with <paramref name="message"/> of the value.</summary>
    private static int Index(string? raw, int count, Func<string, string> message)
    {
        if (raw is null || !IndexPattern().IsMatch(raw) || int.Parse(raw, CultureInfo.InvariantCulture) >= count) throw new BadRequestException(message(Shorten(raw)));
        return int.Parse(raw, CultureInfo.InvariantCulture);
    }

    public static LiveJob Job(LiveWork work, string? raw)
    {
        if (raw is null || !JobId().IsMatch(raw)) throw new BadRequestException($"job '{Shorten(raw)}': expected a job id of 32 hexadecimal digits");
        return work.Get(raw) ?? throw new KeyNotFoundException($"job {raw} is unknown (finished jobs are kept for a while only)");
    }

    public static FeatureListQuery FeatureList(IQueryCollection q, ServeSettings s)
    {
        string sort = q["sort"].ToString() is { Length: > 0 } v ? v : "density";
        if (!FeatureStore.SortColumns.Contains(sort))
            throw new BadRequestException($"sort '{Shorten(sort)}': expected one of {string.Join(", ", FeatureStore.SortColumns)}");
        string order = q["order"].ToString() is { Length: > 0 } o ? o : "desc";
        if (order is not ("asc" or "desc")) throw new BadRequestException($"order '{Shorten(order)}': expected asc or desc");
        return new FeatureListQuery(sort, order == "desc", Int(q, "offset", 0, 0, int.MaxValue), Int(q, "limit", s.PageSize, 1, s.MaxPageSize),
            Double(q, "min_density"), Double(q, "max_density"), Double(q, "min_max_activation"), Bool(q, "hide_dead"));
    }

    public static int Int(IQueryCollection q, string key, int fallback, int min, int max)
    {
        string raw = q[key].ToString();
        if (raw.Length == 0) return fallback;
        if (!int.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new BadRequestException($"{key} '{Shorten(raw)}': expected an integer from {min} to {max}");
        return v;
    }

    public static double? Double(IQueryCollection q, string key)
    {
        string raw = q[key].ToString();
        if (raw.Length == 0) return null;
        if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
            throw new BadRequestException($"{key} '{Shorten(raw)}': expected a finite number");
        return v;
    }

    public static bool Bool(IQueryCollection q, string key)
    {
        string raw = q[key].ToString();
        return raw switch
        {
            "" or "false" or "0" => false,
            "true" or "1" or "on" => true,
            _ => throw new BadRequestException($"{key} '{Shorten(raw)}': expected true or false"),
        };
    }

    /// <summary>The JSON object of a request body (at most the Kestrel body limit), or a 400.</summary>
    public static async Task<JsonObject> Body(HttpRequest request)
    {
        try
        {
            return await JsonNode.ParseAsync(request.Body) as JsonObject ?? throw new BadRequestException("the request body must be a JSON object");
        }
        catch (System.Text.Json.JsonException e) { throw new BadRequestException($"the request body is not valid JSON: {e.Message}"); }
    }

    private static readonly string[] SearchKeys = ["top_k", "min_activation", "include_special_tokens"];
    private static readonly string[] SteerKeys = ["features", "strengths", "mode", "positions", "normalize", "max_tokens", "temperature", "top_p", "top_k", "seed"];

    /// <summary>A text search: <c>text</c> and optionally top_k, min_activation, include_special_tokens.</summary>
    public static SearchRequest Search(JsonObject body, ServedStore store, ServeSettings s)
    {
        string text = Text(body, "text", store, s);
        var settings = Settings(new PromptFeaturesSettings { TopK = 20 }, body, "text", SearchKeys);
        if (settings.TopK < 1 || settings.TopK > s.MaxSearchFeatures) throw new BadRequestException($"top_k {settings.TopK}: expected 1 to {s.MaxSearchFeatures}");
        Check(settings.Validate);
        return new SearchRequest(text, settings);
    }

    /// <summary>
    /// A steering comparison: <c>prompt</c> and <c>features</c> ("12=4,40=-2", or a list of {index, strength}), and
    /// optionally strengths ("0,1" or a list of numbers), mode, positions, normalize, max_tokens, temperature, top_p,
    /// top_k, seed: the settings of `saesharp steer`, held to the server's limits.
    /// </summary>
    public static SteerRequest Steer(JsonObject body, ServedStore store, ServeSettings s)
    {
        string prompt = Text(body, "prompt", store, s);
        var json = new JsonObject();
        foreach (var (k, v) in body) json[k] = v?.DeepClone();
        if (json["features"] is JsonArray fa) json["features"] = FeatureList(fa);
        if (json["strengths"] is JsonArray sa) json["strengths"] = string.Join(",", sa.Select(n => Number(n, "strengths").ToString("R", CultureInfo.InvariantCulture)));
        if (json["features"] is null) throw new BadRequestException("features: give at least one latent, as \"index=strength\" (e.g. \"12=4\") or [{\"index\": 12, \"strength\": 4}]");
        var settings = Settings(new SteerSettings { Strengths = "0,1" }, json, "prompt", SteerKeys);
        Check(settings.Validate);
        var (features, _) = settings.ParseFeatures();
        if (features.Length > s.MaxSteerFeatures) throw new BadRequestException($"features: {features.Length} latents; at most {s.MaxSteerFeatures} (max_steer_features)");
        foreach (var f in features)
        {
            if (f.Index >= store.DSae) throw new BadRequestException($"features: latent {f.Index} is not below d_sae {store.DSae}");
            if (Math.Abs(f.Strength) > s.MaxStrength) throw new BadRequestException($"features: latent {f.Index}'s strength {Num(f.Strength)} is outside [-{Num(s.MaxStrength)}, {Num(s.MaxStrength)}] (max_strength)");
        }
        var strengths = settings.ParseStrengths();
        if (strengths.Length > s.MaxStrengths) throw new BadRequestException($"strengths: {strengths.Length} given; at most {s.MaxStrengths} (max_strengths)");
        foreach (double v in strengths)
            if (Math.Abs(v) > s.MaxStrength) throw new BadRequestException($"strengths: {Num(v)} is outside [-{Num(s.MaxStrength)}, {Num(s.MaxStrength)}] (max_strength)");
        if (strengths.Distinct().Count() != strengths.Length) throw new BadRequestException("strengths: each strength may be given once");
        if (settings.MaxTokens < 1 || settings.MaxTokens > s.MaxNewTokens) throw new BadRequestException($"max_tokens {settings.MaxTokens}: expected 1 to {s.MaxNewTokens} (max_new_tokens)");
        return new SteerRequest(prompt, settings);
    }

    private static string FeatureList(JsonArray list) => string.Join(",", list.Select((n, i) =>
    {
        if (n is not JsonObject o) throw new BadRequestException($"features[{i}]: expected {{\"index\": n, \"strength\": s}}");
        var index = o["index"] is JsonValue iv && iv.TryGetValue(out int idx) && idx >= 0 ? idx : throw new BadRequestException($"features[{i}].index: expected a non-negative integer");
        return o["strength"] is null ? index.ToString(CultureInfo.InvariantCulture) : $"{index}={Number(o["strength"], $"features[{i}].strength").ToString("R", CultureInfo.InvariantCulture)}";
    }));

    private static double Number(JsonNode? n, string what) =>
        n is JsonValue v && v.TryGetValue(out double d) && double.IsFinite(d) ? d : throw new BadRequestException($"{what}: expected finite numbers");

    /// <summary>The request's text field: present, not blank, within max_prompt_chars and max_prompt_tokens.</summary>
    private static string Text(JsonObject body, string key, ServedStore store, ServeSettings s)
    {
        if (body[key] is not JsonValue v || !v.TryGetValue(out string? text)) throw new BadRequestException($"{key}: expected a string");
        if (string.IsNullOrWhiteSpace(text)) throw new BadRequestException($"{key} is empty");
        if (text.Length > s.MaxPromptChars) throw new BadRequestException($"{key}: {text.Length} characters; at most {s.MaxPromptChars} (max_prompt_chars)");
        var live = store.Live ?? throw new BadRequestException($"store {store.Id} ({store.Name}) has no live model: {store.LiveUnavailable}");
        int tokens = live.CountTokens(text);
        if (tokens > s.MaxPromptTokens) throw new BadRequestException($"{key}: {tokens} tokens; at most {s.MaxPromptTokens} (max_prompt_tokens)");
        return text;
    }

    /// <summary>The request's other keys bound onto <paramref name="defaults"/> by the settings' own names; keys outside <paramref name="allowed"/> are refused.</summary>
    private static T Settings<T>(T defaults, JsonObject body, string textKey, string[] allowed) where T : class
    {
        var json = new JsonObject();
        foreach (var (k, v) in body)
        {
            if (k == textKey) continue;
            if (!allowed.Contains(k)) throw new BadRequestException($"unknown field '{Shorten(k)}'; expected {textKey} and {string.Join(", ", allowed)}");
            json[k] = v?.DeepClone();
        }
        try { return ConfigBinder.FromJson(defaults, json, "request"); }
        catch (ArgumentException e) { throw new BadRequestException(e.Message); }
    }

    private static void Check(Action validate)
    {
        try { validate(); }
        catch (ArgumentException e) { throw new BadRequestException(e.Message); }
    }

    private static string Num(double v) => v.ToString("G", CultureInfo.InvariantCulture);

    /// <summary>A request value quoted in a message: at most 40 characters.</summary>
    private static string Shorten(string? raw) => raw is null ? "" : raw.Length <= 40 ? raw : raw[..40] + "…";
}
