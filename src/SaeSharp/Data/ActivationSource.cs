using SaeSharp.Tensors;

namespace SaeSharp.Data;

/// <summary>
/// A stream of activation batches [B, d_in] for training, optionally with the token id of each row. Sources
/// are resumable: <see cref="Position"/> captures everything needed to continue the same stream after a restart.
/// </summary>
public interface IActivationSource
{
    int Dim { get; }
    /// <summary>Fills <paramref name="batch"/> [B, Dim] with the next rows; returns false when the source is exhausted.</summary>
    bool Next(Tensor batch);
    /// <summary>Opaque resumable position (row counters, shuffling RNG state), as a JSON-serialisable string map.</summary>
    IReadOnlyDictionary<string, string> Position { get; }
    void Restore(IReadOnlyDictionary<string, string> position);
}

/// <summary>
/// Rows of an in-memory matrix, reshuffled every epoch with a seeded <see cref="Rng"/>; optionally endless.
/// Backs drrik-style fit mode (activations.npy) and tests. With <c>dropLast</c> a batch never spans two epochs:
/// the rows left at the end of an epoch that cannot fill a batch are skipped (torch's DataLoader drop_last), so
/// every epoch is exactly ⌊rows / batch⌋ batches.
/// </summary>
public sealed class InMemoryActivationSource : IActivationSource
{
    private readonly Tensor _data;
    private readonly bool _endless;
    private readonly bool _shuffle;
    private readonly bool _dropLast;
    private Rng _rng;
    private int[] _order;
    private long _epoch;
    private int _cursor;

    public InMemoryActivationSource(Tensor data, ulong seed, bool shuffle = true, bool endless = true, bool dropLast = false)
    {
        if (data.Rank != 2 || data.Rows == 0) throw new ArgumentException($"activations must be a non-empty 2-D matrix, got [{data.ShapeString}]");
        ActivationRows.EnsureFinite(data, "activations");
        _data = data;
        _endless = endless;
        _shuffle = shuffle;
        _dropLast = dropLast;
        _rng = new Rng(seed);
        _order = NewOrder();
    }

    public int Dim => _data.Cols;
    public int Rows => _data.Rows;
    public long Epoch => _epoch;

    private int[] NewOrder() => _shuffle ? _rng.Permutation(_data.Rows) : Enumerable.Range(0, _data.Rows).ToArray();

    public bool Next(Tensor batch)
    {
        if (batch.Cols != Dim) throw new ArgumentException($"batch has {batch.Cols} columns, activations have {Dim}");
        if (_dropLast)
        {
            if (batch.Rows > _order.Length) throw new ArgumentException($"a batch of {batch.Rows} rows cannot be filled from {_order.Length} rows without crossing an epoch");
            if (_order.Length - _cursor < batch.Rows)
            {
                if (!_endless) return false;
                _epoch++;
                _cursor = 0;
                _order = NewOrder();
            }
        }
        for (int r = 0; r < batch.Rows; r++)
        {
            if (_cursor == _order.Length)
            {
                if (!_endless) return false;
                _epoch++;
                _cursor = 0;
                _order = NewOrder();
            }
            _data.Row(_order[_cursor++]).CopyTo(batch.Row(r));
        }
        return true;
    }

    public IReadOnlyDictionary<string, string> Position
    {
        get
        {
            // The order of the current epoch is regenerated from the RNG state saved before it was drawn.
            return new Dictionary<string, string>
            {
                ["epoch"] = _epoch.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["cursor"] = _cursor.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["order"] = Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_order.AsSpan())),
                ["rng"] = RngStateCodec.Encode(_rng.State),
            };
        }
    }

    public void Restore(IReadOnlyDictionary<string, string> position)
    {
        try
        {
            _epoch = long.Parse(position["epoch"], System.Globalization.CultureInfo.InvariantCulture);
            _cursor = int.Parse(position["cursor"], System.Globalization.CultureInfo.InvariantCulture);
            var bytes = Convert.FromBase64String(position["order"]);
            _order = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(bytes).ToArray();
            _rng = Rng.FromState(RngStateCodec.Decode(position["rng"]));
        }
        catch (Exception e) when (e is KeyNotFoundException or FormatException or OverflowException)
        {
            throw new InvalidDataException($"activation source position is incomplete or corrupt: {e.Message}");
        }
        if (_order.Length != _data.Rows || _cursor < 0 || _cursor > _order.Length)
            throw new InvalidDataException($"activation source position does not fit {_data.Rows} rows (order {_order.Length}, cursor {_cursor})");
    }
}

/// <summary>Text form of an <see cref="RngState"/> for checkpoints.</summary>
public static class RngStateCodec
{
    public static string Encode(RngState s) => string.Join(",", s.S0, s.S1, s.S2, s.S3, s.HasSpareNormal ? 1 : 0,
        BitConverter.DoubleToInt64Bits(s.SpareNormal));

    public static RngState Decode(string text)
    {
        var p = text.Split(',');
        if (p.Length != 6) throw new FormatException($"RNG state '{text}' must have 6 fields");
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        return new RngState(ulong.Parse(p[0], inv), ulong.Parse(p[1], inv), ulong.Parse(p[2], inv), ulong.Parse(p[3], inv), p[4] == "1",
            BitConverter.Int64BitsToDouble(long.Parse(p[5], inv)));
    }
}

/// <summary>Checks on activation matrices read from files.</summary>
public static class ActivationRows
{
    /// <summary>Throws naming <paramref name="source"/>, the row and the column of the first NaN or infinite entry of a [rows, d] matrix.</summary>
    public static void EnsureFinite(Tensor data, string source)
    {
        int at = data.IndexOfNonFinite();
        if (at >= 0)
            throw new InvalidDataException($"{source}: row {at / data.Cols}, column {at % data.Cols} is {data.Span[at]}; activations must be finite");
    }
}
