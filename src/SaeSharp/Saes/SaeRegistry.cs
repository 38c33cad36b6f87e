using SaeSharp.Tensors;

namespace SaeSharp.Saes;

/// <summary>Architectures keyed by the cfg.json <c>architecture</c> string, as SAELens's registry. A new architecture is its file plus one line here.</summary>
public static class SaeRegistry
{
    private static readonly SaeArchitecture[] All =
    [
        StandardSae.Standard,
        TopKSae.TopKArchitecture,
        TopKSae.BatchTopKArchitecture,
        JumpReluSae.Architecture,
        GatedSae.Architecture,
        MatryoshkaBatchTopKSae.Architecture,
        StandardSae.Transcoder,
        StandardSae.SkipTranscoder,
        JumpReluSae.Transcoder,
        JumpReluSae.SkipTranscoder,
    ];

    private static readonly Dictionary<string, SaeArchitecture> ByName = All.ToDictionary(a => a.Name, StringComparer.Ordinal);

    public static IReadOnlyCollection<string> Names { get; } = [.. All.Select(a => a.Name)];

    /// <summary>Every architecture, in registry order.</summary>
    public static IReadOnlyList<SaeArchitecture> Architectures => All;

    /// <summary>Every cfg key some architecture reads or writes.</summary>
    public static IReadOnlySet<string> AllCfgKeys { get; } = All.SelectMany(a => a.CfgKeys).ToHashSet(StringComparer.Ordinal);

    /// <summary>Every SAELens training key some architecture's cfg.json carries (<see cref="SaeArchitecture.TrainingKeys"/>).</summary>
    public static IReadOnlySet<string> AllTrainingCfgKeys { get; } =
        All.SelectMany(a => a.TrainingKeyPairs.Select(p => p.CfgKey)).Append(SaeArchitecture.CommonTrainingKey).ToHashSet(StringComparer.Ordinal);

    public static bool Contains(string name) => ByName.ContainsKey(name);

    /// <summary>The architecture named <paramref name="name"/>; an unknown name is an error listing the known ones.</summary>
    public static SaeArchitecture Get(string name) =>
        ByName.TryGetValue(name, out var a) ? a
            : throw new ArgumentException($"cfg 'architecture': unknown architecture '{name}'; known: {string.Join(", ", Names)}");

    /// <summary>A zero-initialised SAE of the config's architecture whose kernels use <paramref name="compute"/>.</summary>
    public static Sae Create(SaeConfig config, Compute compute) => Get(config.Architecture).Create(config, compute);
}
