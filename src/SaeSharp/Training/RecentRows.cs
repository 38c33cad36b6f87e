using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>
/// The newest training rows, kept in a ring so that a run's final metrics can be measured on the weights it saves
/// (after the last update, resampling and export) over rows it just trained on. Holds up to 16,384 rows and at most
/// 64 MB.
/// </summary>
internal sealed class RecentRows
{
    public const int MaxRows = 16_384;
    private const long MaxFloats = 16L << 20;
    private readonly Tensor _ring;
    private int _next, _filled;

    public RecentRows(int dIn)
    {
        Capacity = (int)Math.Clamp(MaxFloats / Math.Max(1, dIn), 1, MaxRows);
        _ring = new Tensor(Capacity, dIn);
    }

    public int Capacity { get; }

    public void Add(Tensor batch)
    {
        // Only the newest Capacity rows of the batch can survive in the ring.
        for (int r = Math.Max(0, batch.Rows - Capacity); r < batch.Rows; r++)
        {
            batch.Row(r).CopyTo(_ring.Row(_next));
            _next = (_next + 1) % Capacity;
            _filled = Math.Min(Capacity, _filled + 1);
        }
    }

    /// <summary>A copy of the kept rows, oldest first.</summary>
    public Tensor Rows()
    {
        var o = new Tensor(_filled, _ring.Cols);
        int start = _filled < Capacity ? 0 : _next;
        for (int i = 0; i < _filled; i++) _ring.Row((start + i) % Capacity).CopyTo(o.Row(i));
        return o;
    }
}
