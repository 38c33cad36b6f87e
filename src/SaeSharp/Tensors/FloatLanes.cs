using System.Runtime.Intrinsics;

namespace SaeSharp.Tensors;

/// <summary>
/// <see cref="Count"/> float lanes, the operations SaeSharp's hand-vectorised loops need, so that each loop is
/// written once (<see cref="ISimdLoop"/>) and specialised by the JIT for 16, 8, 4 and 1 lanes. Every operation is
/// lane-wise and exactly rounded (no fused multiply-add), so a loop gives the same bits at every width. A mask
/// (what a comparison returns) has each lane all ones or all zeros.
/// </summary>
internal interface IFloatLanes<TSelf> where TSelf : struct, IFloatLanes<TSelf>
{
    static abstract int Count { get; }
    static abstract TSelf Zero { get; }
    static abstract TSelf Create(float value);
    /// <summary>The lanes source[at .. at + Count].</summary>
    static abstract TSelf Load(ReadOnlySpan<float> source, int at);
    /// <summary>Writes the lanes to destination[at .. at + Count].</summary>
    void Store(Span<float> destination, int at);
    /// <summary>destination[at + i] += (double)lane i.</summary>
    void AddWidenedTo(Span<double> destination, int at);
    static abstract TSelf operator +(TSelf a, TSelf b);
    static abstract TSelf operator -(TSelf a, TSelf b);
    static abstract TSelf operator *(TSelf a, TSelf b);
    static abstract TSelf operator /(TSelf a, TSelf b);
    static abstract TSelf operator &(TSelf a, TSelf b);
    static abstract TSelf operator |(TSelf a, TSelf b);
    static abstract TSelf operator ~(TSelf a);
    static abstract TSelf GreaterThan(TSelf a, TSelf b);
    static abstract TSelf LessThan(TSelf a, TSelf b);
    static abstract TSelf EqualTo(TSelf a, TSelf b);
    /// <summary>Lane i from <paramref name="ifTrue"/> where the mask's lane is set, else from <paramref name="ifFalse"/>.</summary>
    static abstract TSelf Select(TSelf mask, TSelf ifTrue, TSelf ifFalse);
    static abstract TSelf Abs(TSelf x);
    static abstract TSelf Sqrt(TSelf x);
    /// <summary>Bit i = the sign bit of lane i (for a mask: whether lane i is set).</summary>
    static abstract uint Bits(TSelf mask);
}

/// <summary>16 lanes (Vector512).</summary>
internal readonly struct F32x16(Vector512<float> v) : IFloatLanes<F32x16>
{
    private readonly Vector512<float> _v = v;
    public static int Count => 16;
    public static F32x16 Zero => new(Vector512<float>.Zero);
    public static F32x16 Create(float value) => new(Vector512.Create(value));
    public static F32x16 Load(ReadOnlySpan<float> source, int at) => new(Vector512.Create(source.Slice(at, 16)));
    public void Store(Span<float> destination, int at) => _v.CopyTo(destination.Slice(at, 16));
    public void AddWidenedTo(Span<double> destination, int at)
    {
        var (lo, hi) = Vector512.Widen(_v);
        var d = destination.Slice(at, 16);
        (Vector512.Create<double>(d) + lo).CopyTo(d);
        (Vector512.Create<double>(d[8..]) + hi).CopyTo(d[8..]);
    }
    public static F32x16 operator +(F32x16 a, F32x16 b) => new(a._v + b._v);
    public static F32x16 operator -(F32x16 a, F32x16 b) => new(a._v - b._v);
    public static F32x16 operator *(F32x16 a, F32x16 b) => new(a._v * b._v);
    public static F32x16 operator /(F32x16 a, F32x16 b) => new(a._v / b._v);
    public static F32x16 operator &(F32x16 a, F32x16 b) => new(a._v & b._v);
    public static F32x16 operator |(F32x16 a, F32x16 b) => new(a._v | b._v);
    public static F32x16 operator ~(F32x16 a) => new(~a._v);
    public static F32x16 GreaterThan(F32x16 a, F32x16 b) => new(Vector512.GreaterThan(a._v, b._v));
    public static F32x16 LessThan(F32x16 a, F32x16 b) => new(Vector512.LessThan(a._v, b._v));
    public static F32x16 EqualTo(F32x16 a, F32x16 b) => new(Vector512.Equals(a._v, b._v));
    public static F32x16 Select(F32x16 mask, F32x16 ifTrue, F32x16 ifFalse) => new(Vector512.ConditionalSelect(mask._v, ifTrue._v, ifFalse._v));
    public static F32x16 Abs(F32x16 x) => new(Vector512.Abs(x._v));
    public static F32x16 Sqrt(F32x16 x) => new(Vector512.Sqrt(x._v));
    public static uint Bits(F32x16 mask) => (uint)mask._v.ExtractMostSignificantBits();
}

/// <summary>8 lanes (Vector256).</summary>
internal readonly struct F32x8(Vector256<float> v) : IFloatLanes<F32x8>
{
    private readonly Vector256<float> _v = v;
    public static int Count => 8;
    public static F32x8 Zero => new(Vector256<float>.Zero);
    public static F32x8 Create(float value) => new(Vector256.Create(value));
    public static F32x8 Load(ReadOnlySpan<float> source, int at) => new(Vector256.Create(source.Slice(at, 8)));
    public void Store(Span<float> destination, int at) => _v.CopyTo(destination.Slice(at, 8));
    public void AddWidenedTo(Span<double> destination, int at)
    {
        var (lo, hi) = Vector256.Widen(_v);
        var d = destination.Slice(at, 8);
        (Vector256.Create<double>(d) + lo).CopyTo(d);
        (Vector256.Create<double>(d[4..]) + hi).CopyTo(d[4..]);
    }
    public static F32x8 operator +(F32x8 a, F32x8 b) => new(a._v + b._v);
    public static F32x8 operator -(F32x8 a, F32x8 b) => new(a._v - b._v);
    public static F32x8 operator *(F32x8 a, F32x8 b) => new(a._v * b._v);
    public static F32x8 operator /(F32x8 a, F32x8 b) => new(a._v / b._v);
    public static F32x8 operator &(F32x8 a, F32x8 b) => new(a._v & b._v);
    public static F32x8 operator |(F32x8 a, F32x8 b) => new(a._v | b._v);
    public static F32x8 operator ~(F32x8 a) => new(~a._v);
    public static F32x8 GreaterThan(F32x8 a, F32x8 b) => new(Vector256.GreaterThan(a._v, b._v));
    public static F32x8 LessThan(F32x8 a, F32x8 b) => new(Vector256.LessThan(a._v, b._v));
    public static F32x8 EqualTo(F32x8 a, F32x8 b) => new(Vector256.Equals(a._v, b._v));
    public static F32x8 Select(F32x8 mask, F32x8 ifTrue, F32x8 ifFalse) => new(Vector256.ConditionalSelect(mask._v, ifTrue._v, ifFalse._v));
    public static F32x8 Abs(F32x8 x) => new(Vector256.Abs(x._v));
    public static F32x8 Sqrt(F32x8 x) => new(Vector256.Sqrt(x._v));
    public static uint Bits(F32x8 mask) => mask._v.ExtractMostSignificantBits();
}

/// <summary>4 lanes (Vector128: SSE, ARM AdvSimd).</summary>
internal readonly struct F32x4(Vector128<float> v) : IFloatLanes<F32x4>
{
    private readonly Vector128<float> _v = v;
    public static int Count => 4;
    public static F32x4 Zero => new(Vector128<float>.Zero);
    public static F32x4 Create(float value) => new(Vector128.Create(value));
    public static F32x4 Load(ReadOnlySpan<float> source, int at) => new(Vector128.Create(source.Slice(at, 4)));
    public void Store(Span<float> destination, int at) => _v.CopyTo(destination.Slice(at, 4));
    public void AddWidenedTo(Span<double> destination, int at)
    {
        var (lo, hi) = Vector128.Widen(_v);
        var d = destination.Slice(at, 4);
        (Vector128.Create<double>(d) + lo).CopyTo(d);
        (Vector128.Create<double>(d[2..]) + hi).CopyTo(d[2..]);
    }
    public static F32x4 operator +(F32x4 a, F32x4 b) => new(a._v + b._v);
    public static F32x4 operator -(F32x4 a, F32x4 b) => new(a._v - b._v);
    public static F32x4 operator *(F32x4 a, F32x4 b) => new(a._v * b._v);
    public static F32x4 operator /(F32x4 a, F32x4 b) => new(a._v / b._v);
    public static F32x4 operator &(F32x4 a, F32x4 b) => new(a._v & b._v);
    public static F32x4 operator |(F32x4 a, F32x4 b) => new(a._v | b._v);
    public static F32x4 operator ~(F32x4 a) => new(~a._v);
    public static F32x4 GreaterThan(F32x4 a, F32x4 b) => new(Vector128.GreaterThan(a._v, b._v));
    public static F32x4 LessThan(F32x4 a, F32x4 b) => new(Vector128.LessThan(a._v, b._v));
    public static F32x4 EqualTo(F32x4 a, F32x4 b) => new(Vector128.Equals(a._v, b._v));
    public static F32x4 Select(F32x4 mask, F32x4 ifTrue, F32x4 ifFalse) => new(Vector128.ConditionalSelect(mask._v, ifTrue._v, ifFalse._v));
    public static F32x4 Abs(F32x4 x) => new(Vector128.Abs(x._v));
    public static F32x4 Sqrt(F32x4 x) => new(Vector128.Sqrt(x._v));
    public static uint Bits(F32x4 mask) => mask._v.ExtractMostSignificantBits();
}

/// <summary>One lane: the scalar path, and every wider path's tail.</summary>
internal readonly struct F32x1(float v) : IFloatLanes<F32x1>
{
    private readonly float _v = v;
    private static F32x1 FromBits(int bits) => new(BitConverter.Int32BitsToSingle(bits));
    private static F32x1 Mask(bool set) => FromBits(set ? -1 : 0);
    private int AsBits => BitConverter.SingleToInt32Bits(_v);
    public static int Count => 1;
    public static F32x1 Zero => new(0f);
    public static F32x1 Create(float value) => new(value);
    public static F32x1 Load(ReadOnlySpan<float> source, int at) => new(source[at]);
    public void Store(Span<float> destination, int at) => destination[at] = _v;
    public void AddWidenedTo(Span<double> destination, int at) => destination[at] += _v;
    public static F32x1 operator +(F32x1 a, F32x1 b) => new(a._v + b._v);
    public static F32x1 operator -(F32x1 a, F32x1 b) => new(a._v - b._v);
    public static F32x1 operator *(F32x1 a, F32x1 b) => new(a._v * b._v);
    public static F32x1 operator /(F32x1 a, F32x1 b) => new(a._v / b._v);
    public static F32x1 operator &(F32x1 a, F32x1 b) => FromBits(a.AsBits & b.AsBits);
    public static F32x1 operator |(F32x1 a, F32x1 b) => FromBits(a.AsBits | b.AsBits);
    public static F32x1 operator ~(F32x1 a) => FromBits(~a.AsBits);
    public static F32x1 GreaterThan(F32x1 a, F32x1 b) => Mask(a._v > b._v);
    public static F32x1 LessThan(F32x1 a, F32x1 b) => Mask(a._v < b._v);
    public static F32x1 EqualTo(F32x1 a, F32x1 b) => Mask(a._v == b._v);
    // Masks are all ones or all zeros, so the sign bit decides, as a bitwise select would.
    public static F32x1 Select(F32x1 mask, F32x1 ifTrue, F32x1 ifFalse) => mask.AsBits < 0 ? ifTrue : ifFalse;
    public static F32x1 Abs(F32x1 x) => new(MathF.Abs(x._v));
    public static F32x1 Sqrt(F32x1 x) => new(MathF.Sqrt(x._v));
    public static uint Bits(F32x1 mask) => (uint)mask.AsBits >> 31;
}
