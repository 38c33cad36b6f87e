using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>
/// One forward pass: the reconstruction, the latent codes (dense or sparse), the pre-activations and every
/// loss term by its SAELens name (already multiplied by its coefficient). <see cref="State"/> carries what
/// the architecture's backward needs beyond these.
/// </summary>
public sealed class SaeForward
{
    public required Tensor Input { get; init; }
    /// <summary>The reconstruction target (the input itself unless a transcoder's separate target was given; null when none).</summary>
    public Tensor? Target { get; init; }
    /// <summary>The run-time activation normalisation applied to the input (null for none / expected_average_only_in).</summary>
    public ActivationNorm? Norm { get; init; }
    /// <summary>The encoder's input after normalisation and the b_dec subtraction (equals x when neither applies).</summary>
    public required Tensor SaeIn { get; init; }
    public required Tensor Output { get; init; }
    public required Tensor PreActs { get; init; }
    public Tensor? Features { get; init; }
    public SparseCodes? Codes { get; init; }
    public Dictionary<string, double> Losses { get; } = [];
    public SaeLossOptions? Options { get; init; }
    public object? State { get; init; }

    public double TotalLoss => Losses.Values.Sum();

    internal SaeForward WithLosses(Dictionary<string, double> losses)
    {
        foreach (var (k, v) in losses) Losses[k] = v;
        return this;
    }

    /// <summary>
    /// How many rows each latent fired on (activation &gt; 0, SAELens's feature_acts &gt; 0): from the codes, or straight from
    /// dense features without building codes (half of a fresh standard SAE's [B, d_sae] entries fire).
    /// </summary>
    public int[] FiringCounts(Compute compute) => Codes is not null ? Codes.FiringCounts(compute) : Ops.PositiveCounts(Features!, compute);

    /// <summary>The latent codes as a dense [B, d_sae] tensor.</summary>
    public Tensor DenseFeatures() => Features ?? Codes!.ToDense();
}
