using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.Intrinsics;
using SaeSharp.Tensors;

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
    public void Update(IReadOnlyDictionary<string, Tensor> parameters, IReadOnlyDictionary<string, Tensor> gradients, float lr, Compute? compute = null)
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
            (compute ?? Compute.All).ForRange(p.Length, 1 << 14, (s, e) =>
            {
                var ps = p.Span[s..e]; var gs = g.Span[s..e]; var ms = m.Span[s..e]; var vs = v.Span[s..e];
                int i = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    // The scalar loop below handles only the last length % 16 elements (ranges start at multiples of 16),
                    // so which path an element takes, and so its result, does not depend on the number of threads.
                    var vb1 = Vector512.Create(b1); var vc1 = Vector512.Create(1 - b1);
                    var vb2 = Vector512.Create(b2); var vc2 = Vector512.Create(1 - b2);
                    var vStep = Vector512.Create(stepSize); var vInv = Vector512.Create(invSqrtC2); var vEps = Vector512.Create(eps);
                    for (; i + 16 <= ps.Length; i += 16)
                    {
                        var gi = Vector512.Create(gs.Slice(i, 16));
                        var mi = vb1 * Vector512.Create(ms.Slice(i, 16)) + vc1 * gi;
                        var vi = vb2 * Vector512.Create(vs.Slice(i, 16)) + vc2 * gi * gi;
                        mi.CopyTo(ms.Slice(i, 16));
                        vi.CopyTo(vs.Slice(i, 16));
                        (Vector512.Create(ps.Slice(i, 16)) - vStep * mi / (Vector512.Sqrt(vi) * vInv + vEps)).CopyTo(ps.Slice(i, 16));
                    }
                }
                for (; i < ps.Length; i++)
                {
                    float gi = gs[i];
                    float mi = ms[i] = b1 * ms[i] + (1 - b1) * gi;
                    float vi = vs[i] = b2 * vs[i] + (1 - b2) * gi * gi;
                    ps[i] -= stepSize * mi / (MathF.Sqrt(vi) * invSqrtC2 + eps);
                }
            }, 16);
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
    public static double ClipGradNorm(IEnumerable<Tensor> gradients, double maxNorm, Compute? compute = null)
    {
        var list = gradients.ToList();
        var c = compute ?? Compute.All;
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
