using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using SaeSharp.Tensors;
using System.Runtime.CompilerServices;

namespace SaeSharp.Training;

/// <summary>
/// Adam with bias correction (torch.optim.Adam semantics, no weight decay) over named float32 parameters.
/// Moments are tensors of the same shapes, exposed for checkpoints and for resetting resampled latents.
/// </summary>
public sealed class Adam
{
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }
    /// <summary>Number of steps taken (drives bias correction).</summary>
    public long Step { get; set; }
    public IReadOnlyDictionary<string, Tensor> FirstMoment => _m;
    public IReadOnlyDictionary<string, Tensor> SecondMoment => _v;

    private readonly Dictionary<string, Tensor> _m = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _v = new(StringComparer.Ordinal);

    public Adam(IEnumerable<KeyValuePair<string, Tensor>> parameters, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), $"adam beta1 must be in [0, 1), got {beta1}");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), $"adam beta2 must be in [0, 1), got {beta2}");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"adam epsilon must be positive, got {epsilon}");
        Beta1 = beta1; Beta2 = beta2; Epsilon = epsilon;
        foreach (var (name, p) in parameters)
        {
            _m[name] = new Tensor(p.Shape.ToArray());
            _v[name] = new Tensor(p.Shape.ToArray());
        }
    }

    /// <summary>
    /// One update: p -= lr · m̂ / (√v̂ + ε), with m̂ = m / (1 − β1ᵗ), v̂ = v / (1 − β2ᵗ). Every parameter named in
    /// <paramref name="gradients"/> must be known; parameters without a gradient are left alone.
    /// </summary>
    public void Update(IReadOnlyDictionary<string, Tensor> parameters, IReadOnlyDictionary<string, Tensor> gradients, float lr, Compute compute)
    {
        Step++;
        double c1 = 1 - Math.Pow(Beta1, Step), c2 = 1 - Math.Pow(Beta2, Step);
        float stepSize = (float)(lr / c1);
        float invSqrtC2 = (float)(1 / Math.Sqrt(c2));
        foreach (var (name, g) in gradients)
        {
            if (!_m.TryGetValue(name, out var m)) throw new KeyNotFoundException($"Adam has no parameter named '{name}'");
            var p = parameters[name];
            if (!p.SameShape(g)) throw new ArgumentException($"gradient of '{name}' has shape [{g.ShapeString}], parameter is [{p.ShapeString}]");
            var v = _v[name];
            float b1 = Beta1, b2 = Beta2, eps = Epsilon;
            compute.ForRange(p.Length, 1 << 14, (s, e) =>
                UpdateSlice(p.Span[s..e], g.Span[s..e], m.Span[s..e], v.Span[s..e], b1, b2, eps, stepSize, invSqrtC2, Simd.Best), 16);
        }
    }

    /// <summary>
    /// The update of one slice at a given vector width: m = β1·m + (1 − β1)·g, v = β2·v + (1 − β2)·g², p −= stepSize·m /
    /// (√v·invSqrtC2 + ε). Element-wise with the same operations at every width, so neither the width nor where the
    /// threads' slices start changes a bit.
    /// </summary>
    internal static void UpdateSlice(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v,
        float beta1, float beta2, float epsilon, float stepSize, float invSqrtC2, SimdWidth width)
    {
        if (g.Length != p.Length || m.Length != p.Length || v.Length != p.Length)
            throw new ArgumentException($"Adam slices must all have the parameter's {p.Length} elements");
        var loop = new UpdateLoop(p, g, m, v, beta1, beta2, epsilon, stepSize, invSqrtC2);
        Simd.Run(ref loop, width);
    }

    private readonly ref struct UpdateLoop(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v,
        float beta1, float beta2, float epsilon, float stepSize, float invSqrtC2) : ISimdLoop
    {
        private readonly Span<float> _p = p, _m = m, _v = v;
        private readonly ReadOnlySpan<float> _g = g;
        private readonly float _beta1 = beta1, _beta2 = beta2, _epsilon = epsilon, _stepSize = stepSize, _invSqrtC2 = invSqrtC2;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int i) where T : struct, IFloatLanes<T>
        {
            var ps = _p; var gs = _g; var ms = _m; var vs = _v;
            var b1 = T.Create(_beta1); var c1 = T.Create(1 - _beta1);
            var b2 = T.Create(_beta2); var c2 = T.Create(1 - _beta2);
            var step = T.Create(_stepSize); var inv = T.Create(_invSqrtC2); var eps = T.Create(_epsilon);
            for (; i + T.Count <= ps.Length; i += T.Count)
            {
                var gi = T.Load(gs, i);
                var mi = b1 * T.Load(ms, i) + c1 * gi;
                var vi = b2 * T.Load(vs, i) + c2 * gi * gi;
                mi.Store(ms, i);
                vi.Store(vs, i);
                (T.Load(ps, i) - step * mi / (T.Sqrt(vi) * inv + eps)).Store(ps, i);
            }
            return i;
        }
    }

    /// <summary>Zeroes both moments of the given rows (axis 0) or columns (axis 1) of a 2-D parameter, or elements of a 1-D one.</summary>
    public void ResetMoments(string name, IReadOnlyCollection<int> indices, int axis)
    {
        foreach (var t in new[] { _m[name], _v[name] })
        {
            if (t.Rank == 1) { foreach (int i in indices) t[i] = 0; }
            else if (axis == 0) { foreach (int i in indices) t.Row(i).Clear(); }
            else for (int r = 0; r < t.Rows; r++) { var row = t.Row(r); foreach (int i in indices) row[i] = 0; }
        }
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double ClipGradNorm(IEnumerable<Tensor> gradients, double maxNorm, Compute compute)
    {
        var list = gradients.ToList();
        var c = compute;
        // Fixed chunks summed in order, so the norm does not depend on the number of threads.
        double sq = 0;
        foreach (var g in list)
        {
            var partial = new double[Ops.Chunks(g.Length)];
            c.For(partial.Length, i => partial[i] = TensorPrimitives.SumOfSquares(Ops.Chunk(g.Span, i)));
            foreach (double p in partial) sq += p;
        }
        double norm = Math.Sqrt(sq);
        if (maxNorm > 0 && norm > maxNorm)
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            foreach (var g in list) c.For(Ops.Chunks(g.Length), i => { var s = Ops.Chunk(g.Span, i); TensorPrimitives.Multiply(s, scale, s); });
        }
        return norm;
    }
}
