using System.Security.Cryptography;
using System.Text.Json;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>
/// Everything needed to continue training exactly: tensors (parameters, Adam moments, trackers as float/int
/// tensors) and a JSON state (step counters, RNG and source positions, scaler). A checkpoint is a folder
/// <c>step_NNNNNNNNN</c> written as <c>.tmp</c> then renamed, and <c>latest.json</c> (written atomically) names the
/// newest complete one, so a kill at any moment leaves the previous checkpoint intact and findable. Each checkpoint
/// carries the SHA-256 of its files (<c>checksum.json</c>); a damaged newest checkpoint is passed over for the previous
/// intact one, with a warning.
/// </summary>
public sealed class Checkpoint
{
    public Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, long[]> Integers { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> State { get; } = new(StringComparer.Ordinal);

    private const string TensorFile = "state.safetensors";
    private const string StateFile = "state.json";
    private const string LatestFile = "latest.json";
    private const string ChecksumFile = "checksum.json";

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
        AtomicFile.WriteAllText(Path.Combine(tmp, ChecksumFile), JsonSerializer.Serialize(new Dictionary<string, string>
        {
            [TensorFile] = Sha256(Path.Combine(tmp, TensorFile)),
            [StateFile] = Sha256(Path.Combine(tmp, StateFile)),
        }));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(tmp, final);
        AtomicFile.WriteAllText(Path.Combine(root, LatestFile), JsonSerializer.Serialize(new Dictionary<string, object> { ["step"] = step, ["dir"] = name }));
        foreach (var old in Directory.GetDirectories(root, "step_*").Where(d => !d.EndsWith(".tmp", StringComparison.Ordinal))
                     .OrderByDescending(d => d, StringComparer.Ordinal).Skip(Math.Max(1, keep)))
            Directory.Delete(old, recursive: true);
        return final;
    }

    /// <summary>
    /// The newest intact checkpoint under <paramref name="root"/> (the one latest.json names, else the newest
    /// <c>step_*</c> folder whose checksums hold), or null when there is none; every damaged one passed over is
    /// reported through <paramref name="warn"/>. Checkpoints that exist but are all damaged are an error.
    /// </summary>
    /// <param name="atMost">Only checkpoints of this step or earlier (the SAEs of a sweep resume at the newest step they all have).</param>
    public static (Checkpoint Checkpoint, long Step)? LoadLatest(string root, Action<string>? warn = null, long atMost = long.MaxValue)
    {
        if (!Directory.Exists(root)) return null;
        var candidates = new List<string>();
        string latest = Path.Combine(root, LatestFile);
        if (File.Exists(latest))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(latest));
                string dir = doc.RootElement.GetProperty("dir").GetString() ?? throw new InvalidDataException("dir is null");
                if (Path.GetFileName(dir) != dir) throw new InvalidDataException($"'{dir}' is not a checkpoint folder name");
                candidates.Add(Path.Combine(root, dir));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidDataException)
            {
                warn?.Invoke($"{latest} is damaged ({e.Message}); looking for the newest intact checkpoint");
            }
        }
        candidates.AddRange(Directory.GetDirectories(root, "step_*").Where(d => !d.EndsWith(".tmp", StringComparison.Ordinal))
            .OrderByDescending(d => d, StringComparer.Ordinal).Where(d => !candidates.Contains(d)));
        if (atMost != long.MaxValue) candidates.RemoveAll(d => StepOf(d) is not long st || st > atMost);
        if (candidates.Count == 0) return null;
        foreach (var dir in candidates)
        {
            try
            {
                var cp = Load(dir);
                long step = StepOf(dir) ?? throw new FormatException($"'{Path.GetFileName(dir)}' is not a step_NNNNNNNNN folder name");
                if (dir != candidates[0]) warn?.Invoke($"resuming from the intact checkpoint {dir} instead");
                return (cp, step);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or FormatException or OverflowException)
            {
                warn?.Invoke($"checkpoint {dir} is damaged: {e.Message}");
            }
        }
        throw new InvalidDataException($"{root}: every checkpoint is damaged ({string.Join(", ", candidates.Select(Path.GetFileName))}); start afresh with --overwrite");
    }

    private static long? StepOf(string dir)
    {
        string name = Path.GetFileName(dir);
        return name.StartsWith("step_", StringComparison.Ordinal) &&
               long.TryParse(name.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long s) ? s : null;
    }

    /// <summary>Reads a checkpoint folder after checking its files against their checksums.</summary>
    public static Checkpoint Load(string dir)
    {
        Verify(dir);
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

    private static void Verify(string dir)
    {
        string path = Path.Combine(dir, ChecksumFile);
        if (!File.Exists(path)) throw new InvalidDataException($"{dir} has no {ChecksumFile}");
        Dictionary<string, string> sums;
        try { sums = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(path)) ?? []; }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})"); }
        foreach (var file in new[] { TensorFile, StateFile })
        {
            string f = Path.Combine(dir, file);
            if (!File.Exists(f)) throw new InvalidDataException($"{dir} lacks {file}");
            if (!sums.TryGetValue(file, out var expected) || expected != Sha256(f))
                throw new InvalidDataException($"{f} does not match its checksum (the file was damaged or changed)");
        }
    }

    private static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    public string Require(string key) => State.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"checkpoint state lacks '{key}'");
    public Tensor RequireTensor(string key) => Tensors.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"checkpoint lacks tensor '{key}'");
    public long[] RequireIntegers(string key) => Integers.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"checkpoint lacks integer tensor '{key}'");
}
