using System.Text;
using System.Text.RegularExpressions;

namespace SaeSharp.IO;

/// <summary>
/// The environment variables a job reads (SAESHARP_{SECTION}__{KEY} settings, HF_HOME, HF_HUB_CACHE, ...): the
/// process's variables over those of a <c>.env</c> file, as drrik's EnvironmentSettings (pydantic-settings) reads them: a
/// variable set in the process wins over the same one in the file. Each value remembers where it came from, so an
/// error names the file and line.
/// </summary>
public sealed partial class EnvironmentSettings
{
    /// <summary>The file read from the working directory.</summary>
    public const string DotEnvFile = ".env";

    private readonly Dictionary<string, (string Value, string Source)> _variables;

    private EnvironmentSettings(Dictionary<string, (string Value, string Source)> variables) => _variables = variables;

    /// <summary>The process environment alone.</summary>
    public static EnvironmentSettings Process() => Combine(ProcessVariables(), null, null);

    /// <summary>The process environment over the variables of <paramref name="dotEnvPath"/> (none when the file does not exist).</summary>
    public static EnvironmentSettings Load(string dotEnvPath) =>
        Combine(ProcessVariables(), File.Exists(dotEnvPath) ? ReadDotEnv(dotEnvPath) : null, dotEnvPath);

    /// <summary><paramref name="process"/> over <paramref name="dotEnv"/> (read from <paramref name="dotEnvPath"/>, for error messages).</summary>
    public static EnvironmentSettings Combine(IReadOnlyDictionary<string, string> process, IReadOnlyList<(string Key, string Value, int Line)>? dotEnv, string? dotEnvPath)
    {
        var all = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        foreach (var (key, value, line) in dotEnv ?? []) all[key] = (value, $"{dotEnvPath} line {line} ({key})");
        foreach (var (key, value) in process) all[key] = (value, $"environment variable {key}");
        return new EnvironmentSettings(all);
    }

    private static Dictionary<string, string> ProcessVariables()
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables()) d[(string)e.Key] = (string?)e.Value ?? "";
        return d;
    }

    /// <summary>A variable's value, or null when it is not set.</summary>
    public string? Get(string name) => _variables.TryGetValue(name, out var v) ? v.Value : null;

    /// <summary>Every variable whose name starts with <paramref name="prefix"/> (case-insensitive), with where it came from.</summary>
    public IEnumerable<(string Name, string Value, string Source)> WithPrefix(string prefix) =>
        _variables.Where(kv => kv.Key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (kv.Key, kv.Value.Value, kv.Value.Source));

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_.]*$")]
    private static partial Regex KeyRegex();

    /// <summary>
    /// The KEY=value lines of a .env file: blank lines and lines starting with # are skipped, an <c>export </c> prefix is
    /// allowed, values may be "double-quoted" (with \n, \t, \" and \\ escapes) or 'single-quoted' (literal), and an
    /// unquoted value ends at a " #" comment. A line that is none of these is an error naming the file and line.
    /// </summary>
    public static List<(string Key, string Value, int Line)> ReadDotEnv(string path)
    {
        var result = new List<(string, string, int)>();
        int n = 0;
        foreach (var raw in File.ReadLines(path))
        {
            n++;
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            if (line.StartsWith("export ", StringComparison.Ordinal)) line = line["export ".Length..].TrimStart();
            int eq = line.IndexOf('=');
            if (eq <= 0) throw new InvalidDataException($"{path} line {n}: expected KEY=value, got '{raw}'");
            string key = line[..eq].Trim();
            if (!KeyRegex().IsMatch(key)) throw new InvalidDataException($"{path} line {n}: '{key}' is not a variable name");
            result.Add((key, Value(line[(eq + 1)..].Trim(), path, n), n));
        }
        return result;
    }

    private static string Value(string text, string path, int line)
    {
        if (text.Length == 0) return "";
        char q = text[0];
        if (q is '"' or '\'')
        {
            var sb = new StringBuilder();
            for (int i = 1; i < text.Length; i++)
            {
                char c = text[i];
                if (c == q)
                {
                    string rest = text[(i + 1)..].Trim();
                    if (rest.Length > 0 && rest[0] != '#') throw new InvalidDataException($"{path} line {line}: unexpected text after the closing quote: '{rest}'");
                    return sb.ToString();
                }
                if (q == '"' && c == '\\' && i + 1 < text.Length)
                {
                    char e = text[++i];
                    sb.Append(e switch { 'n' => '\n', 't' => '\t', 'r' => '\r', _ => e });
                    continue;
                }
                sb.Append(c);
            }
            throw new InvalidDataException($"{path} line {line}: the value's quote {q} is not closed");
        }
        int comment = text.IndexOf(" #", StringComparison.Ordinal);
        return (comment >= 0 ? text[..comment] : text).Trim();
    }
}
