using System.Text;
using System.Text.Json;

namespace SaeSharp.Training;

/// <summary>
/// Appends one JSON object per line to metrics.jsonl. Each line is written whole and flushed, so a killed run
/// leaves only complete lines; <see cref="TruncateAfterStep"/> drops lines beyond a resumed checkpoint.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter _writer;
    public string Path { get; }

    public MetricsLog(string path, bool append)
    {
        Path = path;
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        _writer = new StreamWriter(new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
    }

    public void Write(IReadOnlyDictionary<string, double> metrics)
    {
        var sb = new StringBuilder("{");
        bool first = true;
        foreach (var (k, v) in metrics)
        {
            if (!first) sb.Append(',');
            first = false;
            sb.Append(JsonSerializer.Serialize(k)).Append(':');
            sb.Append(double.IsFinite(v) ? v.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "null");
        }
        sb.Append('}');
        _writer.WriteLine(sb.ToString());
        _writer.Flush();
    }

    /// <summary>Keeps only the lines whose "step" is at most <paramref name="step"/> (and any complete line without one).</summary>
    public static void TruncateAfterStep(string path, long step)
    {
        if (!File.Exists(path)) return;
        var kept = new List<string>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("step", out var s) && s.TryGetInt64(out long st) && st > step) continue;
                kept.Add(line);
            }
            catch (JsonException) { /* a torn last line from a kill: drop it */ }
        }
        SaeSharp.IO.AtomicFile.WriteAllText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
    }

    public void Dispose() => _writer.Dispose();

    /// <summary>
    /// Every column of a metrics.jsonl file, one value per line (NaN where a line lacks the key or holds null), in the
    /// order the keys first appear; a torn last line is skipped. A missing file reads as no lines.
    /// </summary>
    public static MetricsTable Read(string path)
    {
        var columns = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        int lines = 0;
        if (File.Exists(path))
            foreach (var line in File.ReadLines(path))
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                JsonDocument doc;
                try { doc = JsonDocument.Parse(line); }
                catch (JsonException) { continue; }
                using (doc)
                {
                    foreach (var p in doc.RootElement.EnumerateObject())
                        if (!columns.ContainsKey(p.Name)) columns[p.Name] = Enumerable.Repeat(double.NaN, lines).ToList();
                    foreach (var (key, values) in columns)
                        values.Add(doc.RootElement.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN);
                }
                lines++;
            }
        return new MetricsTable(columns.Keys.ToArray(), columns.ToDictionary(c => c.Key, c => c.Value.ToArray()), lines);
    }
}

/// <summary>The columns of a metrics log: a value per line for every key (NaN where a line has none).</summary>
public sealed record MetricsTable(IReadOnlyList<string> Columns, IReadOnlyDictionary<string, double[]> Values, int Lines)
{
    public bool Has(string key) => Values.ContainsKey(key);
    public double[] this[string key] => Values.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"the metrics log has no '{key}' column");
}
