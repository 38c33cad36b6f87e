using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Runs;

/// <summary>
/// One SAE per model with the same settings and seed (`saesharp train --model A,B,C`): e.g. one per checkpoint of a
/// model's training, to match their features afterwards. Run i goes into <c>OUT/&lt;name of model i&gt;/</c> and keeps
/// <see cref="TrainRun"/>'s run-folder rules there. Before anything trains, a new series refuses if any of its folders
/// already holds a run; a resumed series skips the folders that hold a finished SAE, continues the one that was
/// interrupted and starts the rest.
/// </summary>
public static class TrainSeries
{
    /// <summary>The run folder of <paramref name="model"/> under <paramref name="outRoot"/>: its folder name (a .bin file: its name without extension).</summary>
    public static string RunFolder(string outRoot, string model) => Path.Combine(outRoot, Name(model));

    /// <summary>Whether a run folder holds a finished SAE (sae_weights.safetensors is written when training ends).</summary>
    public static bool Finished(string runDir) => File.Exists(Path.Combine(runDir, SaeFiles.WeightsFile)) && File.Exists(Path.Combine(runDir, TrainRun.SettingsFile));

    /// <summary>
    /// Trains <paramref name="s"/> on every model in turn, each run's progress tracked by <paramref name="reporter"/>;
    /// <paramref name="open"/> opens a model's activation stream (called only when its turn comes). Stops after an
    /// interrupted run; returns the runs trained, that one last.
    /// </summary>
    public static IReadOnlyList<TrainRunResult> Execute(TrainSettings s, IReadOnlyList<string> models, Func<string, TrainData> open, string outRoot,
        Compute compute, RunFolderMode mode = RunFolderMode.New, IRunReporter? reporter = null, CancellationToken cancel = default)
    {
        reporter ??= TextReporter.Silent;
        if (models.Count == 0) throw new ArgumentException("give at least one model");
        var folders = models.Select(m => RunFolder(outRoot, m)).ToList();
        var twice = folders.GroupBy(f => f, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new ArgumentException($"two models share the folder name '{Path.GetFileName(twice.Key)}'; each model's run goes into OUT/<its folder name>");
        if (mode == RunFolderMode.New && folders.FirstOrDefault(TrainRun.HoldsRun) is { } taken)
            throw new InvalidOperationException($"{taken} already holds a training run; give --resume to continue the series or --overwrite to start it afresh");
        var results = new List<TrainRunResult>();
        for (int i = 0; i < models.Count; i++)
        {
            var runMode = mode;
            if (mode == RunFolderMode.Resume)
            {
                if (Finished(folders[i])) { reporter.WriteLine($"{folders[i]}: already trained, skipped"); continue; }
                runMode = TrainRun.HoldsRun(folders[i]) ? RunFolderMode.Resume : RunFolderMode.New;
            }
            reporter.WriteLine($"model {i + 1}/{models.Count}: {models[i]} -> {folders[i]}");
            var data = open(models[i]);
            var result = reporter.Track($"{Path.GetFileName(folders[i])}: {s.Architecture} d_sae={s.DSae}", s.MetricsEvery,
                report => TrainRun.Execute(s, data, folders[i], compute, runMode, reporter, cancel, report));
            results.Add(result);
            if (result.Summary.Interrupted) break;
        }
        return results;
    }

    private static string Name(string model)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(model));
        return File.Exists(full) ? Path.GetFileNameWithoutExtension(full) : Path.GetFileName(full);
    }
}
