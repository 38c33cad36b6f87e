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
    /// <summary>transcoder / skip_transcoder: width of the output (the MLP output the transcoder predicts).</summary>
    public int DOut { get; init; }
    /// <summary>matryoshka_batchtopk: strictly increasing prefix widths, the last equal to d_sae.</summary>
    public IReadOnlyList<int>? MatryoshkaWidths { get; init; }
    public JsonObject Metadata { get; init; } = [];

    /// <summary>The architecture's registry entry (family, cfg keys, sparse-path density).</summary>
    public SaeArchitecture Kind => SaeRegistry.Get(Architecture);
    /// <summary>transcoder or skip_transcoder: the decoder writes d_out outputs predicting a separate target.</summary>
    public bool IsTranscoder => Kind.Transcoder;
    /// <summary>Width of the SAE's output: d_out for transcoders, d_in otherwise.</summary>
    public int OutDim => IsTranscoder ? DOut : DIn;

    public static readonly string[] NormalizeModes = ["none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"];

    public void Validate()
    {
        var kind = Kind; // throws naming the known architectures
        if (DIn < 1) throw new ArgumentException($"cfg 'd_in' must be positive, got {DIn}");
        if (DSae < 1) throw new ArgumentException($"cfg 'd_sae' must be positive, got {DSae}");
        if (!NormalizeModes.Contains(NormalizeActivations))
            throw new ArgumentException($"cfg 'normalize_activations': unknown mode '{NormalizeActivations}'; expected one of {string.Join(", ", NormalizeModes)}");
        if (kind.TopK && (K < 1 || K > DSae))
            throw new ArgumentException($"cfg 'k' must be in [1, d_sae={DSae}] for {Architecture}, got {K}");
        if (kind.CfgKeys.Contains("matryoshka_widths"))
        {
            var w = MatryoshkaWidths;
            if (w is null || w.Count == 0) throw new ArgumentException($"cfg 'matryoshka_widths' must list the prefix widths (the last equal to d_sae={DSae}) for {Architecture}");
            if (w[0] < 1) throw new ArgumentException($"cfg 'matryoshka_widths' must be positive, got {w[0]}");
            for (int i = 1; i < w.Count; i++)
                if (w[i] <= w[i - 1]) throw new ArgumentException($"cfg 'matryoshka_widths' must be strictly increasing, got [{string.Join(", ", w)}]");
            if (w[^1] != DSae) throw new ArgumentException($"cfg 'matryoshka_widths' must end with d_sae={DSae}, got [{string.Join(", ", w)}]");
        }
        if (IsTranscoder)
        {
            if (DOut < 1) throw new ArgumentException($"cfg 'd_out' must be positive for {Architecture}, got {DOut}");
            if (ApplyBDecToInput) throw new ArgumentException($"cfg 'apply_b_dec_to_input' must be false for {Architecture} (b_dec has d_out entries, as SAELens)");
            if (NormalizeActivations is "constant_norm_rescale" or "layer_norm")
                throw new ArgumentException($"cfg 'normalize_activations' '{NormalizeActivations}' is not supported for {Architecture}: its output lives at another hook, so the input's normalisation cannot be undone on it");
        }
        if (!(JumpReluBandwidth > 0)) throw new ArgumentException($"cfg 'jumprelu_bandwidth' must be positive, got {JumpReluBandwidth}");
    }
}
