using System.Globalization;
using SaeSharp.Tensors;

namespace SaeSharp.Data;

/// <summary>
/// SAELens-style mixing buffer over a stream of activation chunks [n, dim]: rows accumulate until
/// <c>capacity</c> rows are held, are shuffled with a seeded <see cref="Rng"/>, a <c>mixFraction</c> share stays
/// for the next round and the rest is served in training batches; at the end of the stream the remainder is
/// shuffled and served. A trailing partial batch is dropped. Deterministic for a deterministic producer, so a
/// position is restored by replaying from the start and skipping the rows already served.
/// </summary>
public sealed class MixingBuffer : IActivationSource
{
    private readonly Func<Tensor?> _producer;
    private readonly int _capacity;
    private readonly double _mixFraction;
    private readonly ulong _seed;
    private Rng _rng;
    private readonly List<float[]> _storage = new();
    private readonly Queue<float[]> _out = new();
    private bool _exhausted;
    private long _served;

    public MixingBuffer(int dim, int capacityRows, Func<Tensor?> producer, ulong seed, double mixFraction = 0.5)
    {
        if (dim < 1) throw new ArgumentException($"dim must be >= 1, got {dim}");
        if (capacityRows < 1) throw new ArgumentException($"buffer capacity must be >= 1 row, got {capacityRows}");
        if (mixFraction is < 0 or >= 1) throw new ArgumentException($"mix fraction must be in [0, 1), got {mixFraction}");
        Dim = dim;
        _capacity = capacityRows;
        _producer = producer;
        _mixFraction = mixFraction;
        _seed = seed;
        _rng = new Rng(seed);
    }

    /// <summary>Capacity from SAELens settings: n_batches_in_buffer model batches of contextSize tokens each.</summary>
    public static int CapacityFor(int nBatchesInBuffer, int storeBatchSizePrompts, int contextSize) =>
        checked(nBatchesInBuffer * storeBatchSizePrompts * contextSize);

    public int Dim { get; }
    public long RowsServed => _served;

    private bool Refill()
    {
        while (_out.Count == 0)
        {
            if (_exhausted)
            {
                if (_storage.Count == 0) return false;
                Shuffle();
                foreach (var r in _storage) _out.Enqueue(r);
                _storage.Clear();
                return true;
            }
            var chunk = _producer();
            if (chunk is null) { _exhausted = true; continue; }
            if (chunk.Rank != 2 || chunk.Cols != Dim)
                throw new InvalidDataException($"activation chunk has shape [{chunk.ShapeString}], expected [n, {Dim}]");
            for (int i = 0; i < chunk.Rows; i++) _storage.Add(chunk.Row(i).ToArray());
            if (_storage.Count >= _capacity)
            {
                Shuffle();
                int keep = (int)(_capacity * _mixFraction);
                for (int i = keep; i < _storage.Count; i++) _out.Enqueue(_storage[i]);
                _storage.RemoveRange(keep, _storage.Count - keep);
            }
        }
        return true;
    }

    private void Shuffle()
    {
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_storage);
        _rng.Shuffle(span);
    }

    public bool Next(Tensor batch)
    {
        if (batch.Cols != Dim) throw new ArgumentException($"batch has {batch.Cols} columns, buffer has {Dim}");
        var rows = new float[batch.Rows][];
        for (int r = 0; r < batch.Rows; r++)
        {
            if (!Refill()) return false;
            rows[r] = _out.Dequeue();
        }
        for (int r = 0; r < rows.Length; r++) rows[r].CopyTo(batch.Row(r));
        _served += rows.Length;
        return true;
    }

    public IReadOnlyDictionary<string, string> Position => new Dictionary<string, string>
    {
        ["rows_served"] = _served.ToString(CultureInfo.InvariantCulture),
        ["seed"] = _seed.ToString(CultureInfo.InvariantCulture),
    };

    public void Restore(IReadOnlyDictionary<string, string> position)
    {
        if (!position.TryGetValue("rows_served", out var s) || !long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out long target))
            throw new ArgumentException("position lacks a valid 'rows_served'");
        if (position.TryGetValue("seed", out var seed) && seed != _seed.ToString(CultureInfo.InvariantCulture))
            throw new ArgumentException($"position was saved with seed {seed}, this buffer uses {_seed}");
        if (_served != 0) throw new InvalidOperationException("restore must happen on a fresh buffer (replays the stream from its start)");
        while (_served < target)
        {
            if (!Refill()) throw new InvalidDataException($"stream ended after {_served} rows, position needs {target}");
            _out.Dequeue();
            _served++;
        }
    }
}
