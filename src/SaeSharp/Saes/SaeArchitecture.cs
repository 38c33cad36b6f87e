using SaeSharp.Tensors;

namespace SaeSharp.Saes;

/// <summary>
/// What the library knows about one architecture, declared once beside its implementation and listed in
/// <see cref="SaeRegistry"/>: how to build it, which family it belongs to (top-k selection, batch-wide selection,
/// transcoder), which cfg.json keys it reads and writes, whether it has a sparsity penalty, and the share of active
/// latents below which its forward and backward switch to sparse codes. Callers ask these questions here instead of
/// matching architecture names.
/// </summary>
public sealed record SaeArchitecture
{
    /// <summary>The cfg.json <c>architecture</c> string (SAELens's name).</summary>
    public required string Name { get; init; }
    /// <summary>A zero-initialised SAE of this architecture running on the given thread budget.</summary>
    public required Func<SaeConfig, Compute, Sae> Create { get; init; }
    /// <summary>Keeps the k largest latents (cfg <c>k</c>, <c>rescale_acts_by_decoder_norm</c>).</summary>
    public bool TopK { get; init; }
    /// <summary>Selects k·B latents over the whole batch in training and uses a learned threshold at inference.</summary>
    public bool BatchSelection { get; init; }
    /// <summary>Predicts a separate target (cfg <c>d_out</c>; the output lives at another hook).</summary>
    public bool Transcoder { get; init; }
    /// <summary>Adds a trained linear skip x·W_skipᵀ (W_skip [d_out, d_in], starting at zero) to the output, as SAELens's skip transcoders.</summary>
    public bool SkipConnection { get; init; }
    /// <summary>Trained with a sparsity penalty whose coefficient is <c>l1_coefficient</c> (L1 or L0); top-k kinds have none.</summary>
    public bool SparsityPenalty { get; init; }
    /// <summary>The architecture it is saved as after training (batch top-k kinds become jumprelu, as SAELens); null: itself.</summary>
    public string? SavedAs { get; init; }
    /// <summary>Architecture-specific cfg.json keys it reads and writes (their codecs are in <see cref="SaeFiles"/>).</summary>
    public IReadOnlyList<string> CfgKeys { get; init; } = [];
    /// <summary>
    /// The training keys SAELens writes into this architecture's cfg.json, each <c>cfg_key</c> (the training setting of
    /// that name) or <c>cfg_key=setting</c> where SAELens names the setting otherwise; filled from the run's settings.
    /// </summary>
    public IReadOnlyList<string> TrainingKeys { get; init; } = [];

    /// <summary>The training key every architecture's cfg.json carries beside its own <see cref="TrainingKeys"/>.</summary>
    public const string CommonTrainingKey = "decoder_init_norm";

    /// <summary><see cref="TrainingKeys"/> as (cfg.json key, training setting) pairs.</summary>
    public IEnumerable<(string CfgKey, string Setting)> TrainingKeyPairs =>
        TrainingKeys.Select(entry => entry.IndexOf('=') is int eq and >= 0 ? (entry[..eq], entry[(eq + 1)..]) : (entry, entry));
    /// <summary>
    /// Share of [B, d_sae] entries below which forward and backward work on sparse codes instead of dense GEMMs
    /// (each SAE's <see cref="Sae.SparseDensity"/> starts here); 1 for top-k kinds, which are always sparse.
    /// </summary>
    public double SparseDensity { get; init; } = 1;
}
