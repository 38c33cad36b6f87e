using System.CommandLine;
using Setting = SaeSharp.IO.ConfigBinder.Setting;

namespace SaeSharp.Cli.Commands;

/// <summary>
/// The settings options of a command whose job takes a settings record <typeparamref name="T"/>: --config (YAML),
/// --set key=value, and the most used settings as their own flags, bound onto the defaults in the order YAML,
/// SAESHARP_{SECTION}__* variables, flags, --set. Every key is the record's snake_case property name, so a flag,
/// a YAML key, a variable and a C# property always name the same setting.
/// </summary>
public sealed class SettingOptions<T> where T : class
{
    private readonly string _section;
    private readonly Option<string?> _config = new("--config") { Description = "YAML file of settings (snake_case keys; unknown keys are errors)" };
    private readonly Option<string[]> _set = new("--set") { Description = "Any setting as key=value (repeatable)", AllowMultipleArgumentsPerToken = false };
    private readonly List<(string Key, Option Option)> _flags;

    /// <summary>
    /// Checks the bound settings; an error about one setting is reported with the file line, flag or variable it
    /// came from (<see cref="SaeSharp.IO.ConfigBinder.Validated"/>).
    /// </summary>
    public Action<T>? Validate { get; init; }

    /// <param name="section">The environment variables' section: SAESHARP_{SECTION}__{KEY}.</param>
    /// <param name="flags">Settings with a flag of their own: (snake_case key, option).</param>
    public SettingOptions(string section, params (string Key, Option Option)[] flags)
    {
        var keys = SaeSharp.IO.ConfigBinder.Keys<T>();
        foreach (var (key, option) in flags)
            if (!keys.ContainsKey(key)) throw new InvalidOperationException($"{option.Name}: '{key}' is not a setting of {typeof(T).Name}");
        _section = section;
        _flags = [.. flags];
    }

    public void AddTo(Command command)
    {
        command.Add(_config);
        command.Add(_set);
        foreach (var (_, o) in _flags) command.Add(o);
    }

    /// <summary>The settings: <paramref name="defaults"/>, then YAML, environment, flags and --set.</summary>
    public T Bind(ParseResult p, T defaults) => ConfigSources.Load(defaults, _section, p.GetValue(_config) is { } path ? ConfigSources.FromYaml(path) : [], Flags(p), Validate);

    /// <summary>The settings with <paramref name="fileSettings"/> (a sweep file's shared ones) in the YAML's place; --config is then refused.</summary>
    public T Bind(ParseResult p, T defaults, IEnumerable<KeyValuePair<string, Setting>> fileSettings)
    {
        if (p.GetValue(_config) is not null) throw new ArgumentException("--config and --sweep both give the settings file; put the shared settings at the top of the sweep file");
        return ConfigSources.Load(defaults, _section, fileSettings, Flags(p), Validate);
    }

    /// <summary>The flags and --set assignments given, in that order.</summary>
    public List<KeyValuePair<string, Setting>> Flags(ParseResult p)
    {
        var fromFlags = new List<KeyValuePair<string, Setting>>();
        foreach (var (key, flag) in _flags)
        {
            var r = p.GetResult(flag);
            // A bool flag given bare (--prepend-bos) has no token: it means true.
            if (r is { Implicit: false }) fromFlags.Add(new(key, new Setting(r.Tokens.Count > 0 ? r.Tokens[0].Value : "true", flag.Name)));
        }
        fromFlags.AddRange(ConfigSources.FromAssignments(p.GetValue(_set)));
        return fromFlags;
    }
}

/// <summary>The training settings' options, shared by `train` and `synth train`.</summary>
public static class TrainSettingOptions
{
    public static SettingOptions<Runs.TrainSettings> Create(params (string Key, Option Option)[] extra) => new("train",
    [
        ("architecture", new Option<string>("--architecture") { Description = $"One of {string.Join(", ", SaeSharp.Saes.SaeRegistry.Names)}" }),
        ("d_sae", new Option<int>("--d-sae") { Description = "Number of latents" }),
        ("k", new Option<int>("--k") { Description = "Latents per row (topk; batchtopk and matryoshka_batchtopk on average)" }),
        ("l1_coefficient", new Option<double>("--l1-coefficient") { Description = "L1 (standard, gated) or L0 (jumprelu) coefficient" }),
        ("lr", new Option<double>("--lr") { Description = "Learning rate" }),
        ("steps", new Option<long>("--steps") { Description = "Optimiser steps (default 1000; not with --epochs)" }),
        ("batch_size", new Option<int>("--batch-size") { Description = "Rows per step" }),
        ("seed", new Option<ulong>("--seed") { Description = "Seed of every random choice" }),
        .. extra,
    ])
    { Validate = s => { s.Validate(); s.SaeConfig(1, SaeSharp.Saes.SaeRegistry.Get(s.Architecture).Transcoder ? 1 : 0).Validate(); } };
}

/// <summary>The flags of the context-window settings (<see cref="SaeSharp.Data.ContextSettings"/>), for every command that runs a model over text.</summary>
public static class ContextOptions
{
    /// <summary>Fresh options for context_size, prepend_bos, sequence_separator_token and store_batch_size_prompts.</summary>
    public static (string Key, Option Option)[] Flags() =>
    [
        ("context_size", new Option<int>("--context-size") { Description = "Tokens per context window (default 128)" }),
        ("prepend_bos", new Option<bool>("--prepend-bos") { Description = "BOS begins every context window (default true; --prepend-bos false to turn off)" }),
        ("sequence_separator_token", new Option<string>("--sequence-separator-token") { Description = "Between concatenated documents: bos, eos, none or a token id (default bos)" }),
        ("store_batch_size_prompts", new Option<int>("--store-batch-size-prompts") { Description = "Context windows per model forward (default 32)" }),
    ];
}
