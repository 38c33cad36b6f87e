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
        var result = new List<KeyValuePair<string, Setting>>();
        if (stream.Documents.Count == 0) return result;
        if (stream.Documents[0].RootNode is not YamlMappingNode map)
            throw new InvalidDataException($"{path}: expected a mapping of setting: value at the top level");
        foreach (var (k, v) in map.Children)
        {
            string key = ((YamlScalarNode)k).Value ?? "";
            if (v is not YamlScalarNode scalar)
                throw new InvalidDataException($"{path}: setting '{key}' (line {k.Start.Line}) must be a single value");
            result.Add(new(key, new Setting(scalar.Value ?? "", $"{path} line {k.Start.Line}")));
        }
        return result;
    }

    /// <summary>
    /// File (if any), then environment, then flags, bound onto <paramref name="defaults"/>; <paramref name="validate"/>
    /// errors about a given setting name the line (or flag) it came from.
    /// </summary>
    public static T Load<T>(T defaults, string section, string? yamlPath, IEnumerable<KeyValuePair<string, Setting>> flags, Action<T>? validate = null) where T : class
    {
        var all = new List<KeyValuePair<string, Setting>>();
        if (yamlPath is not null) all.AddRange(FromYaml(yamlPath));
        all.AddRange(ConfigBinder.FromEnvironment(section));
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
