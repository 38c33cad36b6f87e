using System.Text.Json;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>
/// Everything needed to continue training exactly: tensors (parameters, Adam moments, trackers as float/int
/// tensors) and a JSON state (step counters, RNG and source positions, scaler). A checkpoint is a folder
/// <c>step_NNNNNNNNN</c> written as <c>.tmp</c> then renamed, and <c>latest.json</c> (written atomically) names the
/// newest complete one, so a kill at any moment leaves the previous checkpoint intact and findable.
/// </summary>
public sealed class Checkpoint
{
    public Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, long[]> Integers { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> State { get; } = new(StringComparer.Ordinal);

    private const string TensorFile = "state.safetensors";
    private const string StateFile = "state.json";
    private const string LatestFile = "latest.json";

    /// <summary>Writes this checkpoint under <paramref name="root"/> for <paramref name="step"/>; keeps the newest <paramref name="keep"/>.</summary>
    public string Save(string root, long step, int keep = 2)
    {
        Directory.CreateDirectory(root);
        string name = $"step_{step:D9}";
        string final = Path.Combine(root, name);
        string tmp = final + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        var w = new SafetensorsWriter();
        foreach (var (k, t) in Tensors) w.Add(k, t);
        foreach (var (k, v) in Integers) w.AddInt64(k, v, v.Length);
        w.Write(Path.Combine(tmp, TensorFile));
        AtomicFile.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(State, new JsonSerializerOptions { WriteIndented = true }));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(tmp, final);
        AtomicFile.WriteAllText(Path.Combine(root, LatestFile), JsonSerializer.Serialize(new Dictionary<string, object> { ["step"] = step, ["dir"] = name }));
        foreach (var old in Directory.GetDirectories(root, "step_*").Where(d => !d.EndsWith(".tmp", StringComparison.Ordinal))
                     .OrderByDescending(d => d, StringComparer.Ordinal).Skip(Math.Max(1, keep)))
            Directory.Delete(old, recursive: true);
        return final;
    }

    /// <summary>The newest complete checkpoint under <paramref name="root"/>, or null when there is none.</summary>
    public static (Checkpoint Checkpoint, long Step)? LoadLatest(string root)
    {
        string latest = Path.Combine(root, LatestFile);
        if (!File.Exists(latest)) return null;
        string dir;
        long step;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(latest));
            dir = doc.RootElement.GetProperty("dir").GetString() ?? throw new InvalidDataException("dir is null");
            step = doc.RootElement.GetProperty("step").GetInt64();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{latest}: not a valid checkpoint pointer ({e.Message})");
        }
        return (Load(Path.Combine(root, dir)), step);
    }

    public static Checkpoint Load(string dir)
    {
        var cp = new Checkpoint();
        string stateFile = Path.Combine(dir, StateFile);
        if (!File.Exists(stateFile)) throw new FileNotFoundException($"checkpoint {dir} has no {StateFile}", stateFile);
        try
        {
            var state = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(stateFile))
                        ?? throw new InvalidDataException($"{stateFile} is empty");
            foreach (var (k, v) in state) cp.State[k] = v;
        }
        catch (JsonException e) { throw new InvalidDataException($"{stateFile}: not valid JSON ({e.Message})"); }
        using var f = SafetensorsFile.Open(Path.Combine(dir, TensorFile));
        foreach (var name in f.Names)
        {
            if (f.Entry(name).DType == DType.I64) cp.Integers[name] = f.ReadInt64(name);
            else cp.Tensors[name] = f.ReadFloat32(name);
        }
        return cp;
    }

    public string Require(string key) => State.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"checkpoint state lacks '{key}'");
    public Tensor RequireTensor(string key) => Tensors.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"checkpoint lacks tensor '{key}'");
    public long[] RequireIntegers(string key) => Integers.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"checkpoint lacks integer tensor '{key}'");
}
