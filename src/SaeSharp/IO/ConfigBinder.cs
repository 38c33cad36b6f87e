using System.Globalization;
using System.Reflection;
using System.Text;

namespace SaeSharp.IO;

/// <summary>
/// Maps string settings (from a YAML file, environment variables and command-line flags, in that order of
/// precedence) onto a typed config record by snake_case property name. Unknown keys and values that do not
/// parse are errors naming the key and its source, so a typo never silently trains the wrong thing.
/// </summary>
public static class ConfigBinder
{
    /// <summary>A setting's value and where it came from (for error messages).</summary>
    public readonly record struct Setting(string Value, string Source);

    public static string SnakeCase(string pascal)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < pascal.Length; i++)
        {
            char c = pascal[i];
            if (char.IsUpper(c))
            {
                bool boundary = i > 0 && (char.IsLower(pascal[i - 1]) || char.IsDigit(pascal[i - 1]) ||
                                          (i + 1 < pascal.Length && char.IsLower(pascal[i + 1]) && char.IsUpper(pascal[i - 1])));
                if (boundary) sb.Append('_');
                sb.Append(char.ToLowerInvariant(c));
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>The settable properties of <typeparamref name="T"/> by snake_case name.</summary>
    public static IReadOnlyDictionary<string, PropertyInfo> Keys<T>() =>
        typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite)
            .ToDictionary(p => SnakeCase(p.Name), p => p, StringComparer.Ordinal);

    /// <summary>Applies <paramref name="settings"/> to a copy of <paramref name="defaults"/>.</summary>
    public static T Bind<T>(T defaults, IEnumerable<KeyValuePair<string, Setting>> settings) where T : class
    {
        var keys = Keys<T>();
        // Records: clone through the compiler-generated copy constructor so defaults stay untouched.
        var clone = (T)(typeof(T).GetMethod("<Clone>$")?.Invoke(defaults, null) ?? defaults);
        foreach (var (rawKey, setting) in settings)
        {
            string key = rawKey.Replace('-', '_').ToLowerInvariant();
            if (!keys.TryGetValue(key, out var prop))
                throw new ArgumentException($"{setting.Source}: unknown setting '{rawKey}'. Known settings: {string.Join(", ", keys.Keys.OrderBy(k => k, StringComparer.Ordinal))}");
            object? value;
            try { value = Convert(setting.Value, prop.PropertyType); }
            catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
            {
                throw new ArgumentException($"{setting.Source}: setting '{rawKey}' = '{setting.Value}' is not a valid {Describe(prop.PropertyType)}");
            }
            prop.SetValue(clone, value);
        }
        return clone;
    }

    /// <summary>
    /// Runs <paramref name="validate"/> on a bound config; when it throws an ArgumentException about one of the keys
    /// given in <paramref name="settings"/> (its message names the key as <c>'key'</c>, or starts with <c>key:</c> or
    /// <c>key </c>), the error is rethrown led by where that setting came from (file and line, flag, variable).
    /// </summary>
    public static T Validated<T>(T config, IReadOnlyList<KeyValuePair<string, Setting>> settings, Action<T> validate)
    {
        try { validate(config); }
        catch (ArgumentException e)
        {
            // The last occurrence of a key is the one that took effect.
            for (int i = settings.Count - 1; i >= 0; i--)
            {
                string key = settings[i].Key.Replace('-', '_').ToLowerInvariant();
                if (e.Message.Contains($"'{key}'", StringComparison.Ordinal) || e.Message.StartsWith(key + ":", StringComparison.Ordinal)
                    || e.Message.StartsWith(key + " ", StringComparison.Ordinal))
                    throw new ArgumentException($"{settings[i].Value.Source}: {e.Message}", e);
            }
            throw;
        }
        return config;
    }

    /// <summary>Settings from environment variables <c>SAESHARP_{SECTION}__{KEY}</c> (case-insensitive key).</summary>
    public static IEnumerable<KeyValuePair<string, Setting>> FromEnvironment(string section)
    {
        string prefix = $"SAESHARP_{section.ToUpperInvariant()}__";
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            var name = (string)e.Key;
            if (name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                yield return new(name[prefix.Length..].ToLowerInvariant(), new Setting((string?)e.Value ?? "", $"environment variable {name}"));
        }
    }

    private static string Describe(Type t)
    {
        var u = Nullable.GetUnderlyingType(t) ?? t;
        if (u.IsEnum) return $"value (one of {string.Join(", ", Enum.GetNames(u).Select(SnakeCase))})";
        return u.Name switch { "Int32" or "Int64" => "integer", "Double" or "Single" => "number", "Boolean" => "boolean (true/false)", "UInt64" => "non-negative integer", _ => u.Name };
    }

    private static object? Convert(string text, Type type)
    {
        var u = Nullable.GetUnderlyingType(type);
        if (u is not null)
            return string.IsNullOrEmpty(text) || text is "null" or "~" ? null : Convert(text, u);
        var inv = CultureInfo.InvariantCulture;
        if (type == typeof(string)) return text;
        if (type == typeof(int)) return int.Parse(text.Replace("_", ""), NumberStyles.Integer, inv);
        if (type == typeof(long)) return long.Parse(text.Replace("_", ""), NumberStyles.Integer | NumberStyles.AllowExponent, inv);
        if (type == typeof(ulong)) return ulong.Parse(text.Replace("_", ""), NumberStyles.Integer, inv);
        if (type == typeof(double)) return double.Parse(text, NumberStyles.Float, inv);
        if (type == typeof(float)) return float.Parse(text, NumberStyles.Float, inv);
        if (type == typeof(bool))
            return text.ToLowerInvariant() switch { "true" or "yes" or "1" or "on" => true, "false" or "no" or "0" or "off" => false, _ => throw new FormatException() };
        if (type.IsEnum)
        {
            string norm = text.Replace("_", "").Replace("-", "");
            foreach (var n in Enum.GetNames(type))
                if (string.Equals(n, norm, StringComparison.OrdinalIgnoreCase)) return Enum.Parse(type, n);
            throw new FormatException();
        }
        throw new ArgumentException($"unsupported setting type {type.Name}");
    }
}
