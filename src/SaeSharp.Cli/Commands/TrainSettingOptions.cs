using System.CommandLine;
using SaeSharp.Runs;
using Setting = SaeSharp.IO.ConfigBinder.Setting;

namespace SaeSharp.Cli.Commands;

/// <summary>
/// The training-settings options shared by `train` and `synth train`: --config (YAML), --set key=value, and the
/// most common settings as their own flags; bound in that order of precedence after SAESHARP_TRAIN__* variables.
/// </summary>
public sealed class TrainSettingOptions
{
    private readonly Option<string?> _config = new("--config") { Description = "YAML file of settings (snake_case keys; unknown keys are errors)" };
    private readonly Option<string[]> _set = new("--set") { Description = "Any setting as key=value (repeatable)", AllowMultipleArgumentsPerToken = false };
    private readonly List<(string Key, Option Option)> _flags =
    [
        ("architecture", new Option<string>("--architecture") { Description = "standard, topk, batchtopk, matryoshka_batchtopk, jumprelu, gated" }),
        ("d_sae", new Option<int>("--d-sae") { Description = "Number of latents" }),
        ("k", new Option<int>("--k") { Description = "Latents per row (topk; batchtopk and matryoshka_batchtopk on average)" }),
        ("l1_coefficient", new Option<double>("--l1-coefficient") { Description = "L1 (standard, gated) or L0 (jumprelu) coefficient" }),
        ("lr", new Option<double>("--lr") { Description = "Learning rate" }),
        ("steps", new Option<long>("--steps") { Description = "Optimiser steps (default 1000; not with --epochs)" }),
        ("batch_size", new Option<int>("--batch-size") { Description = "Rows per step" }),
        ("seed", new Option<ulong>("--seed") { Description = "Seed of every random choice" }),
    ];

    /// <param name="extra">Further settings with their own flags (key, option), for one command only.</param>
    public TrainSettingOptions(params (string Key, Option Option)[] extra) => _flags.AddRange(extra);

    public void AddTo(Command command)
    {
        command.Add(_config);
        command.Add(_set);
        foreach (var (_, o) in _flags) command.Add(o);
    }

    /// <summary>The settings: <paramref name="defaults"/>, then YAML, environment, flags and --set.</summary>
    public TrainSettings Bind(ParseResult p, TrainSettings defaults, IEnumerable<KeyValuePair<string, Setting>>? extra = null)
    {
        var fromFlags = new List<KeyValuePair<string, Setting>>();
        foreach (var (key, flag) in _flags)
        {
            var r = p.GetResult(flag);
            if (r is not null && r.Tokens.Count > 0) fromFlags.Add(new(key, new Setting(r.Tokens[0].Value, flag.Name)));
        }
        if (extra is not null) fromFlags.AddRange(extra);
        fromFlags.AddRange(ConfigSources.FromAssignments(p.GetValue(_set)));
        // Validated here, where each value's source is known, so an invalid one is reported with its file line or flag.
        return ConfigSources.Load(defaults, "train", p.GetValue(_config), fromFlags, s => { s.Validate(); s.SaeConfig(1).Validate(); });
    }
}
