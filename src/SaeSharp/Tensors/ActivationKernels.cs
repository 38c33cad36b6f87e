using System.Numerics;
using System.Runtime.CompilerServices;

namespace SaeSharp.Tensors;

/// <summary>
/// Row kernels of the SAE activations' forward and backward passes, written once over the vector width
/// (<see cref="ISimdLoop"/>). Lane-wise, so every width gives the same bits; the float64 column sums add one row at
/// a time per column, with no sum across lanes.
/// </summary>
internal static class ActivationKernels
{
    /// <summary>
    /// ReLU backward of one row: grad[j] = pre[j] &gt; 0 ? grad[j] + add[j] : 0 (without <paramref name="add"/> when
    /// it is empty), then gradSums[j] += grad[j] and, unless <paramref name="reluSums"/> is empty, reluSums[j] +=
    /// ReLU(pre[j]), in float64.
    /// </summary>
    public static void ReluBackwardRow(ReadOnlySpan<float> pre, Span<float> grad, ReadOnlySpan<float> add,
        Span<double> gradSums, Span<double> reluSums, SimdWidth width)
    {
        int n = pre.Length;
        if (grad.Length != n || (!add.IsEmpty && add.Length != n) || gradSums.Length != n || (!reluSums.IsEmpty && reluSums.Length != n))
            throw new ArgumentException($"ReLU backward spans must all have the row's {n} elements");
        var loop = new ReluBackwardLoop(pre, grad, add, gradSums, reluSums);
        Simd.Run(ref loop, width);
    }

    private readonly ref struct ReluBackwardLoop(ReadOnlySpan<float> pre, Span<float> grad, ReadOnlySpan<float> add,
        Span<double> gradSums, Span<double> reluSums) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _pre = pre, _add = add;
        private readonly Span<float> _grad = grad;
        private readonly Span<double> _gradSums = gradSums, _reluSums = reluSums;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var p = _pre; var g = _grad; var add = _add; var gs = _gradSums; var rs = _reluSums;
            bool withAdd = !add.IsEmpty, relu = !rs.IsEmpty;
            for (; j + T.Count <= p.Length; j += T.Count)
            {
                var pv = T.Load(p, j);
                var gv = T.Load(g, j);
                if (withAdd) gv += T.Load(add, j);
                var keep = T.GreaterThan(pv, T.Zero);
                gv = T.Select(keep, gv, T.Zero);
                gv.Store(g, j);
                gv.AddWidenedTo(gs, j);
                if (relu) T.Select(keep, pv, T.Zero).AddWidenedTo(rs, j);
            }
            return j;
        }
    }

    /// <summary>
    /// JumpReLU forward of one row, f[j] = pre[j]·[pre[j] &gt; θ[j]]·[pre[j] &gt; 0], returning how many entries the
    /// backward needs: those with pre &gt; θ, inside the threshold kernel's window |pre − θ| &lt; <paramref name="halfWindow"/>,
    /// or below a threshold whose <paramref name="deadLanes"/> entry is positive (the pre-act loss), and how many have
    /// pre &gt; θ (the step-mode L0). With <paramref name="codes"/>, also writes the needed entries (index and f, ascending)
    /// into row <paramref name="codeRow"/>.
    /// </summary>
    public static (int Needed, int Above) JumpReluRow(ReadOnlySpan<float> pre, ReadOnlySpan<float> threshold, ReadOnlySpan<float> deadLanes, float halfWindow,
        Span<float> features, SparseCodes? codes, int codeRow, SimdWidth width)
    {
        int n = pre.Length;
        if (threshold.Length != n || deadLanes.Length != n || features.Length != n)
            throw new ArgumentException($"JumpReLU spans must all have the row's {n} elements");
        var loop = new JumpReluLoop(pre, threshold, deadLanes, halfWindow, features, codes, codes is null ? 0 : codes.RowStart[codeRow]);
        Simd.Run(ref loop, width);
        return (loop.Needed, loop.Above);
    }

    private ref struct JumpReluLoop(ReadOnlySpan<float> pre, ReadOnlySpan<float> threshold, ReadOnlySpan<float> deadLanes, float halfWindow,
        Span<float> features, SparseCodes? codes, int write) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _pre = pre, _threshold = threshold, _deadLanes = deadLanes;
        private readonly Span<float> _features = features;
        private readonly float _halfWindow = halfWindow;
        private readonly SparseCodes? _codes = codes;
        private int _write = write;
        public int Needed { get; private set; }
        public int Above { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var p = _pre; var th = _threshold; var dl = _deadLanes; var f = _features; var codes = _codes;
            var hw = T.Create(_halfWindow);
            int needed = 0, aboveCount = 0, w = _write;
            for (; j + T.Count <= p.Length; j += T.Count)
            {
                var pv = T.Load(p, j); var tv = T.Load(th, j);
                var above = T.GreaterThan(pv, tv);
                T.Select(above & T.GreaterThan(pv, T.Zero), pv, T.Zero).Store(f, j);
                var need = above | T.LessThan(T.Abs(pv - tv), hw) | (T.GreaterThan(tv, pv) & T.GreaterThan(T.Load(dl, j), T.Zero));
                uint mask = T.Bits(need);
                needed += BitOperations.PopCount(mask);
                aboveCount += BitOperations.PopCount(T.Bits(above));
                if (codes is not null)
                    for (; mask != 0; mask &= mask - 1)
                    {
                        int t = j + BitOperations.TrailingZeroCount(mask);
                        codes.Index[w] = t; codes.Value[w++] = f[t];
                    }
            }
            Needed += needed;
            Above += aboveCount;
            _write = w;
            return j;
        }
    }
}
