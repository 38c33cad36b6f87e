using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SaeSharp.Tensors;

/// <summary>
/// A float32, row-major, contiguous tensor: a shape over a slice of a <c>float[]</c>.
/// Views (<see cref="Reshape"/>, <see cref="RowSlice"/>) share storage; nothing copies unless asked.
/// Buffers of at least <see cref="PinnedThreshold"/> floats are allocated on the pinned object heap,
/// uninitialised where the caller asks, so big activations and weights neither move nor get zeroed twice.
/// </summary>
public sealed class Tensor
{
    /// <summary>Buffers this large (in floats) go to the pinned object heap.</summary>
    public const int PinnedThreshold = 1 << 16;

    /// <summary>Buffers this large (in floats, 8 MB) are backed by transparent huge pages where the OS allows.</summary>
    public const int HugePageThreshold = 1 << 21;

    private readonly int[] _shape;

    /// <summary>The backing array; the tensor covers <c>[Offset, Offset + Length)</c>.</summary>
    public float[] Data { get; }
    public int Offset { get; }
    public int Length { get; }

    public Tensor(params int[] shape) : this(Allocate(CheckedLength(shape), zeroed: true), 0, shape) { }

    /// <summary>Wraps <paramref name="data"/> (no copy). Its length must equal the shape's product.</summary>
    public Tensor(float[] data, params int[] shape) : this(data, 0, shape)
    {
        if (data.Length != Length)
            throw new ArgumentException($"data has {data.Length} floats but shape [{string.Join(", ", shape)}] needs {Length}");
    }

    private Tensor(float[] data, int offset, int[] shape)
    {
        _shape = (int[])shape.Clone();
        Length = CheckedLength(_shape);
        if (offset < 0 || offset + (long)Length > data.Length)
            throw new ArgumentException("view exceeds its backing array");
        Data = data;
        Offset = offset;
    }

    /// <summary>A tensor whose contents are unspecified (use when every element will be written).</summary>
    public static Tensor Uninitialized(params int[] shape) => new(Allocate(CheckedLength(shape), zeroed: false), 0, shape);

    public static Tensor FromArray(float[] data, params int[] shape) => new(data, shape);

    public static Tensor Filled(float value, params int[] shape)
    {
        var t = Uninitialized(shape);
        t.Span.Fill(value);
        return t;
    }

    public ReadOnlySpan<int> Shape => _shape;
    public int Rank => _shape.Length;
    public int Dim(int axis) => _shape[axis < 0 ? _shape.Length + axis : axis];

    /// <summary>Size of the last axis (1 for a scalar).</summary>
    public int Cols => _shape.Length == 0 ? 1 : _shape[^1];
    /// <summary>Product of all axes but the last: the number of rows when viewed as a matrix.</summary>
    public int Rows => Cols == 0 ? 0 : Length / Cols;

    public Span<float> Span => Data.AsSpan(Offset, Length);

    /// <summary>Row <paramref name="i"/> of the tensor viewed as [Rows, Cols].</summary>
    public Span<float> Row(int i)
    {
        if ((uint)i >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(i), $"row {i} of {Rows}");
        return Data.AsSpan(Offset + i * Cols, Cols);
    }

    public ref float this[int i, int j]
    {
        get
        {
            if (Rank != 2) throw new InvalidOperationException($"2-index access on a rank-{Rank} tensor");
            if ((uint)i >= (uint)_shape[0] || (uint)j >= (uint)_shape[1])
                throw new IndexOutOfRangeException($"[{i}, {j}] outside [{_shape[0]}, {_shape[1]}]");
            return ref Data[Offset + i * _shape[1] + j];
        }
    }

    public ref float this[int i]
    {
        get
        {
            if ((uint)i >= (uint)Length) throw new IndexOutOfRangeException($"{i} outside {Length}");
            return ref Data[Offset + i];
        }
    }

    /// <summary>A view with another shape over the same storage; one axis may be -1 (inferred).</summary>
    public Tensor Reshape(params int[] shape)
    {
        var s = (int[])shape.Clone();
        int infer = Array.IndexOf(s, -1);
        if (infer >= 0)
        {
            long known = 1;
            for (int i = 0; i < s.Length; i++) if (i != infer) known *= s[i];
            if (known == 0 || Length % known != 0) throw new ArgumentException($"cannot infer axis of [{string.Join(", ", shape)}] for {Length} elements");
            s[infer] = (int)(Length / known);
        }
        if (CheckedLength(s) != Length)
            throw new ArgumentException($"cannot reshape [{ShapeString}] ({Length} elements) to [{string.Join(", ", s)}]");
        return new Tensor(Data, Offset, s);
    }

    /// <summary>A view of rows [start, start+count) along the first axis.</summary>
    public Tensor RowSlice(int start, int count)
    {
        if (Rank == 0) throw new InvalidOperationException("cannot slice a scalar");
        if (start < 0 || count < 0 || start + count > _shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) outside [0, {_shape[0]})");
        int inner = _shape[0] == 0 ? 0 : Length / _shape[0];
        var s = (int[])_shape.Clone();
        s[0] = count;
        return new Tensor(Data, Offset + start * inner, s);
    }

    public Tensor Clone()
    {
        var t = Uninitialized(_shape);
        Span.CopyTo(t.Span);
        return t;
    }

    public float[] ToArray() => Span.ToArray();

    /// <summary>Flat index of the first NaN or infinite element, or -1 when every element is finite.</summary>
    public int IndexOfNonFinite()
    {
        var span = Span;
        const int Chunk = 1 << 16;
        for (int start = 0; start < span.Length; start += Chunk)
        {
            var c = span.Slice(start, Math.Min(Chunk, span.Length - start));
            // A finite sum proves the chunk finite (vectorised); otherwise look (it may only have overflowed).
            if (float.IsFinite(System.Numerics.Tensors.TensorPrimitives.SumOfMagnitudes(c))) continue;
            for (int i = 0; i < c.Length; i++) if (!float.IsFinite(c[i])) return start + i;
        }
        return -1;
    }

    /// <summary>The multi-index of flat element <paramref name="flat"/>, as "[i, j, ...]".</summary>
    public string IndexString(int flat)
    {
        var index = new int[Rank];
        for (int d = Rank - 1; d >= 0; d--) { index[d] = flat % _shape[d]; flat /= _shape[d]; }
        return "[" + string.Join(", ", index) + "]";
    }

    public string ShapeString => string.Join(", ", _shape);

    public override string ToString() => $"Tensor[{ShapeString}]";

    public bool SameShape(Tensor other) => _shape.AsSpan().SequenceEqual(other._shape);

    /// <summary>Throws with <paramref name="what"/> in the message unless the shape is exactly <paramref name="shape"/>.</summary>
    public void EnsureShape(string what, params int[] shape)
    {
        if (!_shape.AsSpan().SequenceEqual(shape))
            throw new ArgumentException($"{what}: expected shape [{string.Join(", ", shape)}], got [{ShapeString}]");
    }

    internal static int CheckedLength(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape.ToArray())}]");
            n *= d;
            if (n > Array.MaxLength) throw new ArgumentException($"shape [{string.Join(", ", shape.ToArray())}] has more than {Array.MaxLength} elements");
        }
        return (int)n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float[] Allocate(int length, bool zeroed)
    {
        if (length >= PinnedThreshold)
        {
            LargeBuffers.BeforeAllocate((long)length * sizeof(float));
            var a = GC.AllocateUninitializedArray<float>(length, pinned: true);
            if (length >= HugePageThreshold) HugePages.Advise(a);
            if (zeroed) Array.Clear(a);
            return a;
        }
        return zeroed ? new float[length] : GC.AllocateUninitializedArray<float>(length);
    }
}
