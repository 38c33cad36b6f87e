using System.Text.Json.Nodes;

namespace SaeSharp.Saes;

/// <summary>
/// An SAE's cfg.json (SAELens v6 keys). Architecture-specific fields are ignored by other architectures and
/// only written for the architecture that uses them. <see cref="Metadata"/> is kept as given (model_name,
/// hook_name, ...).
/// </summary>
public sealed record SaeConfig
{
    public required string Architecture { get; init; }
    public required int DIn { get; init; }
    public required int DSae { get; init; }
    public bool ApplyBDecToInput { get; init; } = true;
    /// <summary>none, expected_average_only_in, constant_norm_rescale or layer_norm.</summary>
    public string NormalizeActivations { get; init; } = "none";
    public string Dtype { get; init; } = "float32";
    public string Device { get; init; } = "cpu";
    /// <summary>topk / batchtopk: latents kept per row (batchtopk: on average).</summary>
    public int K { get; init; }
    /// <summary>topk / batchtopk: rank pre-activations scaled by the decoder row norm.</summary>
    public bool RescaleActsByDecoderNorm { get; init; }
    /// <summary>batchtopk: EMA rate of the inference threshold (SAELens topk_threshold_lr).</summary>
    public double TopKThresholdLr { get; init; } = 0.01;
    /// <summary>jumprelu: rectangle-kernel bandwidth of the straight-through estimator.</summary>
    public double JumpReluBandwidth { get; init; } = 0.05;
    /// <summary>jumprelu: initial threshold value.</summary>
    public double JumpReluInitThreshold { get; init; } = 0.01;
    public JsonObject Metadata { get; init; } = [];

    public static readonly string[] NormalizeModes = ["none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"];

    public void Validate()
    {
        if (!SaeRegistry.Names.Contains(Architecture))
            throw new ArgumentException($"cfg 'architecture': unknown architecture '{Architecture}'; known: {string.Join(", ", SaeRegistry.Names)}");
        if (DIn < 1) throw new ArgumentException($"cfg 'd_in' must be positive, got {DIn}");
        if (DSae < 1) throw new ArgumentException($"cfg 'd_sae' must be positive, got {DSae}");
        if (!NormalizeModes.Contains(NormalizeActivations))
            throw new ArgumentException($"cfg 'normalize_activations': unknown mode '{NormalizeActivations}'; expected one of {string.Join(", ", NormalizeModes)}");
        if (Architecture is "topk" or "batchtopk" && (K < 1 || K > DSae))
            throw new ArgumentException($"cfg 'k' must be in [1, d_sae={DSae}] for {Architecture}, got {K}");
        if (!(JumpReluBandwidth > 0)) throw new ArgumentException($"cfg 'jumprelu_bandwidth' must be positive, got {JumpReluBandwidth}");
    }
}
