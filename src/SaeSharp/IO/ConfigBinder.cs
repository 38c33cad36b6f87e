using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;

namespace SaeSharp.IO;

/// <summary>
/// Marks a property whose record type holds further settings that share the parent's flat key space (e.g. the
/// activation stream's settings inside a training run's), so <c>context_size</c> is a key of both the group and every
/// settings record that embeds it.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SettingsGroupAttribute : Attribute;

/// <summary>
/// Maps string settings (from a YAML file, environment variables and command-line flags, in that order of
/// precedence) onto a typed config record by snake_case property name. Unknown keys and values that do not
/// parse are errors naming the key and its source, so a typo never silently trains the wrong thing.
/// </summary>
public static class ConfigBinder
{
    /// <summary>A setting's value and where it came from (for error messages); <paramref name="IsNull"/> unsets a nullable setting (JSON null).</summary>
    public readonly record struct Setting(string Value, string Source, bool IsNull = false);

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

    /// <summary>One setting: its property, inside the <see cref="SettingsGroupAttribute"/> property <see cref="Group"/> when not null.</summary>
    public sealed record SettingKey(string Name, PropertyInfo? Group, PropertyInfo Property);

    /// <summary>The settable properties of <typeparamref name="T"/> (and of its settings groups) by snake_case name.</summary>
    public static IReadOnlyDictionary<string, SettingKey> Keys<T>() => Keys(typeof(T));

    private static Dictionary<string, SettingKey> Keys(Type type)
    {
        var keys = new Dictionary<string, SettingKey>(StringComparer.Ordinal);
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            var found = p.GetCustomAttribute<SettingsGroupAttribute>() is null
                ? [new SettingKey(SnakeCase(p.Name), null, p)]
                : Keys(p.PropertyType).Values.Select(k => k with { Group = p });
            foreach (var k in found)
                if (!keys.TryAdd(k.Name, k)) throw new InvalidOperationException($"{type.Name}: setting '{k.Name}' is defined twice");
        }
        return keys;
    }

    /// <summary>Applies <paramref name="settings"/> to a copy of <paramref name="defaults"/> (its groups copied too).</summary>
    public static T Bind<T>(T defaults, IEnumerable<KeyValuePair<string, Setting>> settings) where T : class
    {
        var keys = Keys<T>();
        var clone = CloneRecord(defaults);
        var groups = new Dictionary<PropertyInfo, object>();
        foreach (var (rawKey, setting) in settings)
        {
            string key = rawKey.Replace('-', '_').ToLowerInvariant();
            if (!keys.TryGetValue(key, out var k))
                throw new ArgumentException($"{setting.Source}: unknown setting '{rawKey}'. Known settings: {string.Join(", ", keys.Keys.OrderBy(n => n, StringComparer.Ordinal))}");
            object? value;
            try
            {
                value = !setting.IsNull ? Convert(setting.Value, k.Property.PropertyType)
                    : k.Property.PropertyType.IsValueType && Nullable.GetUnderlyingType(k.Property.PropertyType) is null
                        ? throw new FormatException("null for a setting that needs a value") : null;
            }
            catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
            {
                throw new ArgumentException($"{setting.Source}: setting '{rawKey}' = '{setting.Value}' is not a valid {Describe(k.Property.PropertyType)}");
            }
            object target = clone;
            if (k.Group is not null && !groups.TryGetValue(k.Group, out target!))
            {
                target = CloneRecord(k.Group.GetValue(clone) ?? throw new InvalidOperationException($"settings group {k.Group.Name} is null"));
                k.Group.SetValue(clone, target);
                groups[k.Group] = target;
            }
            k.Property.SetValue(target, value);
        }
        return clone;
    }

    // Records: clone through the compiler-generated copy constructor so the defaults stay untouched.
    private static T CloneRecord<T>(T value) where T : class =>
        (T)(value.GetType().GetMethod("<Clone>$")?.Invoke(value, null) ?? value);

    /// <summary>Every setting of <paramref name="settings"/> as one flat JSON object of snake_case keys (enums by name).</summary>
    public static JsonObject ToJson<T>(T settings) where T : class
    {
        var o = new JsonObject();
        foreach (var (name, k) in Keys<T>().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            object? owner = k.Group is null ? settings : k.Group.GetValue(settings);
            object? v = k.Property.GetValue(owner);
            o[name] = v switch
            {
                null => null,
                Enum e => SnakeCase(e.ToString()),
                string s => s,
                bool b => b,
                int i => i,
                long l => l,
                ulong u => u,
                float f => f,
                double d => d,
                _ => throw new InvalidOperationException($"setting '{name}' has unsupported type {v.GetType().Name}"),
            };
        }
        return o;
    }

    /// <summary>Settings from a flat JSON object (as <see cref="ToJson"/> writes), bound onto <paramref name="defaults"/>; <paramref name="source"/> names the file in errors.</summary>
    public static T FromJson<T>(T defaults, JsonObject json, string source) where T : class =>
        Bind(defaults, json.Select(kv => new KeyValuePair<string, Setting>(kv.Key, new Setting(
            kv.Value switch
            {
                null => "",
                JsonValue v when v.TryGetValue(out string? s) => s,
                var v => v.ToJsonString(),
            }, $"{source} key '{kv.Key}'", IsNull: kv.Value is null))));

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

    /// <summary>Settings from the process's environment variables <c>SAESHARP_{SECTION}__{KEY}</c> (case-insensitive key).</summary>
    public static IEnumerable<KeyValuePair<string, Setting>> FromEnvironment(string section) => FromEnvironment(section, EnvironmentSettings.Process());

    /// <summary>Settings from the variables <c>SAESHARP_{SECTION}__{KEY}</c> of <paramref name="environment"/> (the process's, over a .env file's).</summary>
    public static IEnumerable<KeyValuePair<string, Setting>> FromEnvironment(string section, EnvironmentSettings environment)
    {
        string prefix = $"SAESHARP_{section.ToUpperInvariant()}__";
        foreach (var (name, value, source) in environment.WithPrefix(prefix))
            yield return new(name[prefix.Length..].ToLowerInvariant(), new Setting(value, source));
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
