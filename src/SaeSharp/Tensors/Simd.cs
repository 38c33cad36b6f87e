using System.Runtime.Intrinsics;

namespace SaeSharp.Tensors;

/// <summary>The vector width a hand-vectorised loop runs at (System.Numerics.Tensors' TensorPrimitives covers the rest).</summary>
internal enum SimdWidth { Scalar, V128, V256, V512 }

/// <summary>
/// A loop over float lanes written once for every width: <see cref="Run{T}"/> processes whole vectors of
/// the lane type's width from <c>start</c> while one fits and returns where it stopped. A kernel is a ref
/// struct holding its spans and results; <see cref="Simd.Run{TLoop}"/> runs it at a width, then one lane at a time
/// (<see cref="F32x1"/>) for the tail, so the scalar path is the same code as the vector ones. Implementations mark
/// Run <c>[MethodImpl(MethodImplOptions.AggressiveOptimization)]</c>: unoptimised (tier-0) code calls every lane
/// operation instead of inlining it, which made a width's first calls 10–100× slower than plain scalar code.
/// </summary>
internal interface ISimdLoop
{
    int Run<T>(int start) where T : struct, IFloatLanes<T>;
}

/// <summary>Width selection and dispatch for <see cref="ISimdLoop"/> kernels.</summary>
internal static class Simd
{
    /// <summary>
    /// The widest width the runtime accelerates: V512 on AVX-512 machines where the runtime enables it, V256 with
    /// AVX2, V128 with SSE or ARM AdvSimd. Public entry points use this; tests pass each width to the internal ones.
    /// </summary>
    public static readonly SimdWidth Best =
        Vector512.IsHardwareAccelerated ? SimdWidth.V512
        : Vector256.IsHardwareAccelerated ? SimdWidth.V256
        : Vector128.IsHardwareAccelerated ? SimdWidth.V128
        : SimdWidth.Scalar;

    /// <summary>
    /// Runs <paramref name="loop"/> over whole vectors of <paramref name="width"/> from element 0, then lane by lane
    /// over the rest. A width that is not accelerated still runs correctly (the runtime emulates it), only slowly.
    /// </summary>
    public static void Run<TLoop>(ref TLoop loop, SimdWidth width) where TLoop : ISimdLoop, allows ref struct
    {
        int done = width switch
        {
            SimdWidth.V512 => loop.Run<F32x16>(0),
            SimdWidth.V256 => loop.Run<F32x8>(0),
            SimdWidth.V128 => loop.Run<F32x4>(0),
            _ => 0,
        };
        loop.Run<F32x1>(done);
    }
}
