using System.Globalization;
using SaeSharp.Data;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Synthetic;

/// <summary>
/// An endless training stream of hidden activations from a <see cref="SyntheticModel"/>, with the true feature
/// activations of the latest batch kept for evaluation. Resumable through the RNG state.
/// </summary>
public sealed class SyntheticActivationSource : IActivationSource
{
    private readonly SyntheticModel _model;
    private readonly Compute _compute;
    private Rng _rng;
    private long _rows;

    public SyntheticActivationSource(SyntheticModel model, ulong seed, Compute compute)
    {
        _model = model;
        _rng = new Rng(seed);
        _compute = compute ?? throw new ArgumentNullException(nameof(compute));
    }

    public int Dim => _model.Config.HiddenDim;
    /// <summary>True feature activations of the most recent batch, as sparse codes [B, num_features].</summary>
    public SparseCodes? LastFeatures { get; private set; }

    public bool Next(Tensor batch)
    {
        batch.EnsureShape("synthetic batch", batch.Rows, Dim);
        var (features, hidden) = _model.SampleCodes(batch.Rows, _rng, _compute);
        hidden.Span.CopyTo(batch.Span);
        LastFeatures = features;
        _rows += batch.Rows;
        return true;
    }

    public IReadOnlyDictionary<string, string> Position => new Dictionary<string, string>
    {
        ["rows"] = _rows.ToString(CultureInfo.InvariantCulture),
        ["rng"] = RngStateCodec.Encode(_rng.State),
    };

    public void Restore(IReadOnlyDictionary<string, string> position)
    {
        try
        {
            _rows = long.Parse(position["rows"], CultureInfo.InvariantCulture);
            _rng = Rng.FromState(RngStateCodec.Decode(position["rng"]));
        }
        catch (Exception e) when (e is KeyNotFoundException or FormatException or OverflowException)
        {
            throw new InvalidDataException($"synthetic source position is incomplete or corrupt: {e.Message}");
        }
    }
}
