using System.Text.Json;
using System.Text.Json.Serialization;

namespace SaeSharp.IO;

/// <summary>
/// Typed JSON configs (cfg.json, config.json, run settings): snake_case keys mapped onto a record, unknown keys an
/// error by default (a typo must not silently train the wrong thing), null for a non-nullable member an error,
/// comments and trailing commas allowed. Errors are InvalidDataException naming the file and the JSON path.
/// </summary>
public static class JsonConfig
{
    /// <summary>Config files larger than this are refused before reading (configs are small; this is not one).</summary>
    public const long MaxBytes = 64L << 20;

    private static readonly JsonSerializerOptions Strict = Create(allowUnknownKeys: false);
    private static readonly JsonSerializerOptions Lenient = Create(allowUnknownKeys: true);

    /// <summary>The options this class uses; pass <paramref name="allowUnknownKeys"/> for files written by other
    /// tools that carry keys SaeSharp does not model (e.g. a Hugging Face config.json).</summary>
    public static JsonSerializerOptions Create(bool allowUnknownKeys) => new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = allowUnknownKeys ? JsonUnmappedMemberHandling.Skip : JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Reads <paramref name="path"/> into <typeparamref name="T"/>.</summary>
    public static T Read<T>(string path, bool allowUnknownKeys = false)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file not found: {path}", path);
        long length = new FileInfo(path).Length;
        if (length > MaxBytes) throw new InvalidDataException($"{path}: {length} bytes is over the {MaxBytes}-byte limit for a config file");
        return Parse<T>(File.ReadAllBytes(path), path, allowUnknownKeys);
    }

    /// <summary>Parses UTF-8 JSON into <typeparamref name="T"/>; <paramref name="source"/> names it in errors.</summary>
    public static T Parse<T>(ReadOnlySpan<byte> utf8Json, string source, bool allowUnknownKeys = false)
    {
        T? value;
        try { value = JsonSerializer.Deserialize<T>(utf8Json, allowUnknownKeys ? Lenient : Strict); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: {Describe(e)}", e); }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or ArgumentException or FormatException)
        { throw new InvalidDataException($"{source}: cannot read as {typeof(T).Name}: {e.Message}", e); }
        return value ?? throw new InvalidDataException($"{source}: is JSON null, expected a {typeof(T).Name} object");
    }

    public static T Parse<T>(string json, string source, bool allowUnknownKeys = false) =>
        Parse<T>(System.Text.Encoding.UTF8.GetBytes(json), source, allowUnknownKeys);

    /// <summary>Writes <paramref name="value"/> as indented snake_case JSON, atomically.</summary>
    public static void Write<T>(string path, T value) =>
        AtomicFile.Write(path, s => JsonSerializer.Serialize(s, value, Strict));

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Strict);

    private static string Describe(JsonException e)
    {
        // JsonException messages end with "Path: $.x | LineNumber: ..."; lead with the location, then the reason.
        string where = e.Path is null ? "" : $"at {e.Path}";
        if (e.LineNumber is long line) where += $" (line {line + 1}, byte {e.BytePositionInLine + 1})";
        string reason = e.Message;
        int cut = reason.IndexOf(" Path: ", StringComparison.Ordinal);
        if (cut > 0) reason = reason[..cut];
        return where.Length == 0 ? reason : $"{where.Trim()}: {reason}";
    }
}
