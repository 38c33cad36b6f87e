using System.Text.Json.Nodes;
using SaeSharp.IO;
using YamlDotNet.RepresentationModel;
using Setting = SaeSharp.IO.ConfigBinder.Setting;

namespace SaeSharp.Cli;

/// <summary>
/// Collects a command's settings in precedence order: YAML file, then SAESHARP_{SECTION}__{KEY} environment
/// variables, then command-line flags; <see cref="ConfigBinder"/> maps them onto the typed config.
/// </summary>
public static class ConfigSources
{
    /// <summary>The top-level scalar settings of a YAML file (a flat mapping of key: value).</summary>
    public static List<KeyValuePair<string, Setting>> FromYaml(string path)
    {
        var map = ReadMapping(path);
        return map is null ? [] : Scalars(map, path, "");
    }

    /// <summary>
    /// A sweep file: its top-level scalars are the settings every SAE shares, and <c>saes:</c> holds one entry per
    /// SAE, either a mapping of name: {settings} or a list of mappings each with a <c>name</c>.
    /// </summary>
    public static (List<KeyValuePair<string, Setting>> Shared, List<(string Name, IEnumerable<KeyValuePair<string, Setting>> Settings)> Saes) FromSweepYaml(string path)
    {
        var map = ReadMapping(path) ?? throw new InvalidDataException($"{path}: empty sweep file; expected shared settings and 'saes:'");
        var saesKey = map.Children.Keys.OfType<YamlScalarNode>().FirstOrDefault(k => k.Value == "saes")
                      ?? throw new InvalidDataException($"{path}: a sweep file lists its SAEs under 'saes:' (name: {{settings}} ...)");
        var shared = Scalars(map, path, "", skip: "saes");
        var saes = new List<(string, IEnumerable<KeyValuePair<string, Setting>>)>();
        switch (map.Children[saesKey])
        {
            case YamlMappingNode byName:
                foreach (var (k, v) in byName.Children)
                {
                    string name = ((YamlScalarNode)k).Value ?? "";
                    if (v is not YamlMappingNode entry) throw new InvalidDataException($"{path} line {k.Start.Line}: SAE '{name}' must be a mapping of setting: value");
                    saes.Add((name, Scalars(entry, path, $"saes.{name}.")));
                }
                break;
            case YamlSequenceNode list:
                foreach (var item in list.Children)
                {
                    if (item is not YamlMappingNode entry) throw new InvalidDataException($"{path} line {item.Start.Line}: each SAE must be a mapping of setting: value with a name");
                    var settings = Scalars(entry, path, "saes[].");
                    var name = settings.FirstOrDefault(kv => kv.Key == "name");
                    if (name.Key is null) throw new InvalidDataException($"{path} line {item.Start.Line}: an SAE in the 'saes' list needs a name (its run folder)");
                    saes.Add((name.Value.Value, settings.Where(kv => kv.Key != "name").ToList()));
                }
                break;
            default:
                throw new InvalidDataException($"{path} line {saesKey.Start.Line}: 'saes' must map names to settings, or list settings with a name each");
        }
        return (shared, saes);
    }

    private static YamlStream LoadYaml(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file not found: {path}", path);
        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(path);
            stream.Load(reader);
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new InvalidDataException($"{path}: not valid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}");
        }
        return stream;
    }

    private static YamlMappingNode? ReadMapping(string path)
    {
        var stream = LoadYaml(path);
        if (stream.Documents.Count == 0) return null;
        return stream.Documents[0].RootNode as YamlMappingNode
               ?? throw new InvalidDataException($"{path}: expected a mapping of setting: value at the top level");
    }

    private static List<KeyValuePair<string, Setting>> Scalars(YamlMappingNode map, string path, string prefix, string? skip = null)
    {
        var result = new List<KeyValuePair<string, Setting>>();
        foreach (var (k, v) in map.Children)
        {
            string key = ((YamlScalarNode)k).Value ?? "";
            if (key == skip) continue;
            if (v is not YamlScalarNode scalar)
                throw new InvalidDataException($"{path}: setting '{prefix}{key}' (line {k.Start.Line}) must be a single value");
            result.Add(new(key, new Setting(scalar.Value ?? "", $"{path} line {k.Start.Line}")));
        }
        return result;
    }

    /// <summary>
    /// A whole YAML document (nested mappings and lists) as JSON, with each value's line: plain scalars that read as
    /// numbers, true/false or null become those, quoted scalars stay strings. <c>Line</c> maps a JSON path
    /// (<c>$.hierarchy.trees[0].feature_index</c>) to the 1-based line it came from.
    /// </summary>
    public static (JsonNode? Json, IReadOnlyDictionary<string, int> Line) YamlToJson(string path)
    {
        var stream = LoadYaml(path);
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        if (stream.Documents.Count == 0) return (null, lines);
        JsonNode? Convert(YamlNode node, string at)
        {
            lines.TryAdd(at, (int)node.Start.Line); // a mapping value keeps its key's line
            switch (node)
            {
                case YamlMappingNode map:
                    var o = new JsonObject();
                    foreach (var (k, v) in map.Children)
                    {
                        string key = (k as YamlScalarNode)?.Value ?? throw new InvalidDataException($"{path} line {k.Start.Line}: keys must be plain names");
                        if (o.ContainsKey(key)) throw new InvalidDataException($"{path} line {k.Start.Line}: '{key}' appears twice");
                        lines[$"{at}.{key}"] = (int)k.Start.Line;
                        o[key] = Convert(v, $"{at}.{key}");
                    }
                    return o;
                case YamlSequenceNode seq:
                    var a = new JsonArray();
                    for (int i = 0; i < seq.Children.Count; i++) a.Add(Convert(seq.Children[i], $"{at}[{i}]"));
                    return a;
                case YamlScalarNode scalar:
                    string text = scalar.Value ?? "";
                    if (scalar.Style is not (YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any)) return JsonValue.Create(text);
                    if (text is "" or "~" or "null" or "Null" or "NULL") return null;
                    if (text is "true" or "True" or "TRUE") return JsonValue.Create(true);
                    if (text is "false" or "False" or "FALSE") return JsonValue.Create(false);
                    if (long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long l)) return JsonValue.Create(l);
                    if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)) return JsonValue.Create(d);
                    return JsonValue.Create(text);
                default:
                    throw new InvalidDataException($"{path} line {node.Start.Line}: unsupported YAML node (anchors and aliases are not read)");
            }
        }
        return (Convert(stream.Documents[0].RootNode, "$"), lines);
    }

    /// <summary>
    /// Reads a config file as <typeparamref name="T"/> through <paramref name="parse"/>: JSON as it is, YAML converted.
    /// An error that names a field (a JSON path <c>$.a.b</c>, or <c>config.a.b</c>) is led by the YAML line it is on.
    /// </summary>
    public static T ReadStructured<T>(string path, Func<JsonNode?, string, T> parse)
    {
        bool yaml = path.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".yml", StringComparison.OrdinalIgnoreCase);
        if (!yaml)
        {
            if (!File.Exists(path)) throw new FileNotFoundException($"config file not found: {path}", path);
            JsonNode? json;
            try { json = JsonNode.Parse(File.ReadAllText(path)); }
            catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})"); }
            return parse(json, path);
        }
        var (node, lines) = YamlToJson(path);
        try { return parse(node, path); }
        catch (Exception e) when (e is InvalidDataException or ArgumentException)
        {
            // The deepest field named in the message whose line is known.
            string? at = (e.InnerException as System.Text.Json.JsonException)?.Path;
            var m = System.Text.RegularExpressions.Regex.Match(e.Message, @"config((?:\.[a-z_]+|\[\d+\])+)");
            if (at is null && m.Success) at = "$" + m.Groups[1].Value;
            while (at is not null && !lines.ContainsKey(at))
            {
                int cut = Math.Max(at.LastIndexOf('.'), at.LastIndexOf('['));
                at = cut > 0 ? at[..cut] : null;
            }
            if (at is null || at == "$") throw;
            throw new InvalidDataException($"{path} line {lines[at]}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The environment a command reads: the process's variables over those of a .env file in the working directory
    /// (drrik's EnvironmentSettings), for SAESHARP_{SECTION}__{KEY} settings and HF_HOME / HF_HUB_CACHE.
    /// </summary>
    public static EnvironmentSettings LoadEnvironment() => EnvironmentSettings.Load(Path.Combine(Directory.GetCurrentDirectory(), EnvironmentSettings.DotEnvFile));

    /// <summary>
    /// File (if any), then environment, then flags, bound onto <paramref name="defaults"/>; <paramref name="validate"/>
    /// errors about a given setting name the line (or flag) it came from.
    /// </summary>
    public static T Load<T>(T defaults, string section, string? yamlPath, IEnumerable<KeyValuePair<string, Setting>> flags, Action<T>? validate = null) where T : class =>
        Load(defaults, section, yamlPath is null ? [] : FromYaml(yamlPath), flags, validate);

    /// <summary>The settings of a file (already read), then environment, then flags, bound onto <paramref name="defaults"/> and validated as above.</summary>
    public static T Load<T>(T defaults, string section, IEnumerable<KeyValuePair<string, Setting>> fileSettings, IEnumerable<KeyValuePair<string, Setting>> flags, Action<T>? validate = null) where T : class
    {
        var all = new List<KeyValuePair<string, Setting>>(fileSettings);
        all.AddRange(ConfigBinder.FromEnvironment(section, LoadEnvironment()));
        all.AddRange(flags);
        var bound = ConfigBinder.Bind(defaults, all);
        return validate is null ? bound : ConfigBinder.Validated(bound, all, validate);
    }

    /// <summary>Settings given as repeated <c>--set key=value</c> flags.</summary>
    public static IEnumerable<KeyValuePair<string, Setting>> FromAssignments(IEnumerable<string>? assignments)
    {
        foreach (var a in assignments ?? Array.Empty<string>())
        {
            int eq = a.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"--set '{a}': expected key=value");
            yield return new(a[..eq].Trim(), new Setting(a[(eq + 1)..].Trim(), $"--set {a}"));
        }
    }
}
