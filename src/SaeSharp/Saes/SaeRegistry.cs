namespace SaeSharp.Saes;

/// <summary>Architectures keyed by the cfg.json <c>architecture</c> string, as SAELens's registry.</summary>
public static class SaeRegistry
{
    private static readonly Dictionary<string, Func<SaeConfig, Sae>> Factories = new()
    {
        ["standard"] = c => new StandardSae(c),
        ["topk"] = c => new TopKSae(c),
        ["batchtopk"] = c => new TopKSae(c),
        ["jumprelu"] = c => new JumpReluSae(c),
        ["gated"] = c => new GatedSae(c),
        ["matryoshka_batchtopk"] = c => new MatryoshkaBatchTopKSae(c),
        ["transcoder"] = c => new StandardSae(c),
        ["skip_transcoder"] = c => new StandardSae(c),
    };

    public static IReadOnlyCollection<string> Names => Factories.Keys;

    /// <summary>A zero-initialised SAE of the config's architecture.</summary>
    public static Sae Create(SaeConfig config) =>
        Factories.TryGetValue(config.Architecture, out var make) ? make(config)
            : throw new ArgumentException($"cfg 'architecture': unknown architecture '{config.Architecture}'; known: {string.Join(", ", Names)}");
}
