using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SaeSharp.IO;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Runs;

/// <summary>One SAE of a sweep: the name of its run folder inside the sweep's folder, and its settings.</summary>
public sealed record SweepMember(string Name, TrainSettings Settings);

/// <summary>The outcome of <see cref="SweepRun.Execute"/>: each SAE's run, in the sweep's order.</summary>
public sealed record SweepRunResult(IReadOnlyList<SweepMember> Saes, IReadOnlyList<TrainRunResult> Results, TimeSpan Elapsed)
{
    public bool Interrupted => Results.Any(r => r.Summary.Interrupted);
}

/// <summary>
/// Several SAEs trained on one activation stream (SAELens 6.44's MultiSAETrainingRunner): one model forward per batch
/// serves every SAE (their hooks read from the same forward), each SAE has its own optimiser, schedule, trackers and run
/// folder (<c>{out}/{name}/</c>, a complete run folder), and all step in lock step on the same batches, so each ends
/// exactly as it would trained alone on that stream. Settings that shape the stream (<see cref="StreamKeys"/>) are the
/// sweep's; the rest may differ per SAE. The sweep folder's <see cref="SweepFile"/> records the members, the shared
/// settings and the data, and the sweep resumes as a whole from the newest step all its SAEs have checkpointed.
/// </summary>
public static partial class SweepRun
{
    /// <summary>The sweep's record in its folder: member names, shared settings, data identity.</summary>
    public const string SweepFile = "sweep.json";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex NameRegex();

    /// <summary>The settings every SAE of a sweep shares: those marked <see cref="StreamSettingAttribute"/> (alone or as a group).</summary>
    public static IReadOnlySet<string> StreamKeys { get; } = ConfigBinder.Keys<TrainSettings>().Values
        .Where(k => k.Property.GetCustomAttribute<StreamSettingAttribute>() is not null || k.Group?.GetCustomAttribute<StreamSettingAttribute>() is not null)
        .Select(k => k.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// The sweep's SAEs: each is <paramref name="shared"/> with its own entries bound on top. An entry that sets a
    /// stream setting is an error naming where it came from (it must be the same for every SAE).
    /// </summary>
    public static List<SweepMember> Members(TrainSettings shared, IEnumerable<(string Name, IEnumerable<KeyValuePair<string, ConfigBinder.Setting>> Settings)> saes)
    {
        var members = new List<SweepMember>();
        foreach (var (name, entries) in saes)
        {
            var list = entries.ToList();
            foreach (var (key, setting) in list)
                if (StreamKeys.Contains(key.Replace('-', '_').ToLowerInvariant()))
                    throw new ArgumentException($"{setting.Source}: '{key}' is shared by every SAE of a sweep (one stream feeds them all in lock step); set it once at the top level");
            members.Add(new SweepMember(name, ConfigBinder.Bind(shared, list)));
        }
        return members;
    }

    /// <summary>Checks the sweep's members: folder-safe unique names, valid settings, one stream (equal stream settings), steps rather than epochs.</summary>
    public static void Validate(IReadOnlyList<SweepMember> saes)
    {
        if (saes.Count == 0) throw new ArgumentException("a sweep needs at least one SAE (saes: name: {settings} ...)");
        foreach (var m in saes)
        {
            if (!NameRegex().IsMatch(m.Name)) throw new ArgumentException($"sweep SAE name '{m.Name}' must be a folder name of letters, digits, '.', '_' and '-'");
            try { m.Settings.Validate(); }
            catch (ArgumentException e) { throw new ArgumentException($"sweep SAE '{m.Name}': {e.Message}"); }
            if (m.Settings.FitMode) throw new ArgumentException($"sweep SAE '{m.Name}': epochs (fit mode) is not for sweeps; a sweep trains for steps on one stream");
        }
        var dup = saes.GroupBy(m => m.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"sweep SAE name '{dup.Key}' is used twice");
        // Initialisation samples are drawn from the stream before training: if only some SAEs drew them, the others would
        // start later in the stream than they would alone.
        foreach (var (what, draws) in new (string, Func<TrainSettings, bool>)[]
                 {
                     ("normalize_activations expected_average_only_in (a scale estimated from the first batches)", x => x.NormalizeActivations == "expected_average_only_in"),
                     ("b_dec_init other than zeros (b_dec from a sample of rows)", x => x.BDecInit != "zeros"),
                 })
            if (saes.Any(m => draws(m.Settings)) && saes.Any(m => !draws(m.Settings)))
                throw new ArgumentException($"the SAEs of a sweep must agree on {what}: {string.Join(", ", saes.Where(m => draws(m.Settings)).Select(m => m.Name))} draw it from the stream before training, " +
                                            $"{string.Join(", ", saes.Where(m => !draws(m.Settings)).Select(m => m.Name))} do not, so they would see other batches than alone");
        var first = ConfigBinder.ToJson(saes[0].Settings);
        foreach (var m in saes.Skip(1))
        {
            var json = ConfigBinder.ToJson(m.Settings);
            foreach (var key in StreamKeys.Order(StringComparer.Ordinal))
                if ((first[key]?.ToJsonString() ?? "null") != (json[key]?.ToJsonString() ?? "null"))
                    throw new ArgumentException($"the SAEs of a sweep share one stream, but '{saes[0].Name}' has {key} = {first[key]?.ToJsonString() ?? "null"} and '{m.Name}' {json[key]?.ToJsonString() ?? "null"}");
        }
    }

    /// <summary>Whether <paramref name="dir"/> holds a sweep.</summary>
    public static bool HoldsSweep(string dir) => File.Exists(Path.Combine(dir, SweepFile));

    /// <summary>The shared settings and the SAEs (each from its run folder's train_settings.json) of the sweep in <paramref name="dir"/>.</summary>
    public static (TrainSettings Shared, List<SweepMember> Saes) Load(string dir)
    {
        var (shared, names, _) = ReadRecord(dir);
        return (shared, [.. names.Select(n => new SweepMember(n, TrainRun.LoadSettings(Path.Combine(dir, n))))]);
    }

    private static (TrainSettings Shared, List<string> Names, JsonObject Identity) ReadRecord(string dir)
    {
        string path = Path.Combine(dir, SweepFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{dir} has no {SweepFile}; is it a SaeSharp sweep folder?", path);
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
            var names = (root["saes"] as JsonArray ?? throw new InvalidDataException($"{path}: no 'saes' list"))
                .Select(n => n is JsonValue v && v.TryGetValue(out string? s) ? s : throw new InvalidDataException($"{path}: 'saes' must list names")).ToList();
            var settings = root["settings"] as JsonObject ?? throw new InvalidDataException($"{path}: no 'settings' object");
            return (ConfigBinder.FromJson(new TrainSettings(), settings, path), names, root["data"] as JsonObject ?? []);
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})"); }
        catch (ArgumentException e) { throw new InvalidDataException(e.Message); }
    }

    /// <summary>
    /// Trains every SAE of <paramref name="saes"/> on <paramref name="data"/> (opened for all of them, e.g. by
    /// <see cref="TrainInputs.Open(TrainSettings, IReadOnlyList{TrainSettings}, Compute, string?, string?, string?, string?, string?, bool, string?, string?)"/>
    /// with <paramref name="shared"/> as the stream's settings) into <c>{outDir}/{name}</c>, under the run-folder rules
    /// for the sweep as a whole: a folder holding a sweep is continued only with <see cref="RunFolderMode.Resume"/> (the
    /// same SAEs, settings and data) or replaced with <see cref="RunFolderMode.Overwrite"/>.
    /// </summary>
    public static SweepRunResult Execute(TrainSettings shared, IReadOnlyList<SweepMember> saes, TrainData data, string outDir, Compute compute,
        RunFolderMode mode = RunFolderMode.New, IRunReporter? reporter = null, CancellationToken cancel = default, Action<TrainProgress>? progress = null)
    {
        reporter ??= TextReporter.Silent;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Validate(saes);
        var members = saes.Select(m => new TrainMember(m.Settings, Path.Combine(outDir, m.Name), data, m.Name)).ToList();
        PrepareFolder(shared, saes, data, outDir, mode, reporter);
        foreach (var m in members) m.Resuming = TrainRun.PrepareFolder(m.Settings, data, m.Dir, mode, TextReporter.Silent);
        var results = TrainMember.RunLockstep(members, data, compute, reporter, cancel, progress);
        return new SweepRunResult(saes, [.. results.Select(r => r with { Elapsed = clock.Elapsed })], clock.Elapsed);
    }

    private static void PrepareFolder(TrainSettings shared, IReadOnlyList<SweepMember> saes, TrainData data, string outDir, RunFolderMode mode, IRunReporter reporter)
    {
        bool holds = HoldsSweep(outDir) || saes.Any(m => TrainRun.HoldsRun(Path.Combine(outDir, m.Name)));
        switch (mode)
        {
            case RunFolderMode.New when holds:
                throw new InvalidOperationException($"{outDir} already holds a sweep; give --resume to continue it (same SAEs, settings and data) or --overwrite to start afresh");
            case RunFolderMode.Resume:
                if (!HoldsSweep(outDir)) throw new InvalidOperationException($"{outDir} holds no sweep to resume ({SweepFile} is missing)");
                var (recorded, names, identity) = ReadRecord(outDir);
                var differences = new List<string>();
                if (!names.SequenceEqual(saes.Select(m => m.Name)))
                    differences.Add($"SAEs: {string.Join(", ", names)} → {string.Join(", ", saes.Select(m => m.Name))}");
                differences.AddRange(TrainRun.Differences(ConfigBinder.ToJson(recorded), ConfigBinder.ToJson(shared), "setting"));
                differences.AddRange(TrainRun.Differences(identity, data.Identity, "data"));
                if (differences.Count > 0)
                    throw new InvalidOperationException($"{outDir}: the resume differs from the sweep it continues; start afresh with --overwrite or resume unchanged. Differences: {string.Join("; ", differences)}");
                return;
            case RunFolderMode.Overwrite when holds:
                File.Delete(Path.Combine(outDir, SweepFile));
                reporter.WriteLine($"overwriting the sweep in {outDir}");
                break;
        }
        Directory.CreateDirectory(outDir);
        var record = new JsonObject
        {
            ["saes"] = new JsonArray([.. saes.Select(m => (JsonNode)m.Name)]),
            ["settings"] = ConfigBinder.ToJson(shared),
            ["data"] = data.Identity.DeepClone(),
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, SweepFile), record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>One line per SAE of a finished sweep (its closing summary), and the sweep's time.</summary>
    public static IEnumerable<string> Describe(SweepRunResult r)
    {
        for (int i = 0; i < r.Saes.Count; i++) yield return $"{r.Saes[i].Name}: {TrainRun.DescribeResult(r.Results[i])}";
        long rows = r.Results.Count == 0 ? 0 : r.Results[0].Summary.TokensSeen;
        yield return string.Create(CultureInfo.InvariantCulture,
            $"sweep of {r.Saes.Count} SAEs: {rows:N0} rows streamed once for all in {r.Elapsed.TotalSeconds:F1} s");
    }
}
