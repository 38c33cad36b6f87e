using SaeSharp.Tensors;
using SaeSharp.Training;
using SaeSharp.Tests.Tensors;

namespace SaeSharp.Tests.Training;

public class OptimTests
{
    [Theory]
    [InlineData(37)]
    [InlineData(16)]
    [InlineData(1000)]
    public void VectorisedAdamFollowsTheFormulaAndDoesNotDependOnThreads(int n)
    {
        var rng = new Rng(8);
        var start = new float[n];
        rng.FillNormal(start);
        var grads = Enumerable.Range(0, 3).Select(_ => { var g = new Tensor(n); rng.FillNormal(g.Span); return g; }).ToList();
        float[] Run(Compute compute)
        {
            var p = new Dictionary<string, Tensor> { ["w"] = Tensor.FromArray((float[])start.Clone(), n) };
            var adam = new Adam(p, 0.9f, 0.99f, 1e-6f);
            foreach (var g in grads) adam.Update(p, new Dictionary<string, Tensor> { ["w"] = g }, 0.01f, compute);
            return p["w"].Span.ToArray();
        }
        var single = Run(Compute.Single);
        Assert.Equal(single, Run(new Compute(2)));
        Assert.Equal(single, Run(new Compute(3)));
        // The bias-corrected Adam formula in float64.
        var expected = start.Select(x => (double)x).ToArray();
        var m = new double[n]; var v = new double[n];
        for (int step = 1; step <= grads.Count; step++)
            for (int i = 0; i < n; i++)
            {
                double gi = grads[step - 1][i];
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.99 * v[i] + 0.01 * gi * gi;
                expected[i] -= 0.01 * (m[i] / (1 - Math.Pow(0.9, step))) / (Math.Sqrt(v[i] / (1 - Math.Pow(0.99, step))) + 1e-6);
            }
        for (int i = 0; i < n; i++) Assert.Equal(expected[i], single[i], 5e-6);
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void AdamUpdateGivesTheScalarFormulasBitsAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(45);
        const float B1 = 0.9f, B2 = 0.99f, Eps = 1e-6f, StepSize = 0.013f, InvSqrtC2 = 1.7f;
        foreach (int n in SimdPaths.AwkwardLengths)
        {
            var p = SimdPaths.Values(n, rng, 0.05); var g = SimdPaths.Values(n, rng, 0.05);
            var m = SimdPaths.Values(n, rng, 0); var v = SimdPaths.Values(n, rng, 0).Select(MathF.Abs).ToArray();
            // The update element by element, in float as the kernel computes it.
            var (pe, me, ve) = ((float[])p.Clone(), (float[])m.Clone(), (float[])v.Clone());
            for (int i = 0; i < n; i++)
            {
                me[i] = B1 * me[i] + (1 - B1) * g[i];
                ve[i] = B2 * ve[i] + (1 - B2) * g[i] * g[i];
                pe[i] -= StepSize * me[i] / (MathF.Sqrt(ve[i]) * InvSqrtC2 + Eps);
            }
            Adam.UpdateSlice(p, g, m, v, B1, B2, Eps, StepSize, InvSqrtC2, w);
            Assert.Equal(me, m);
            Assert.Equal(ve, v);
            Assert.Equal(pe, p);
        }
    }

    [Fact]
    public void AdamStepsMatchHandComputedValues()
    {
        var p = new Dictionary<string, Tensor> { ["w"] = Tensor.FromArray(new[] { 1f, -2f }, 2) };
        var adam = new Adam(p);
        adam.Update(p, new Dictionary<string, Tensor> { ["w"] = Tensor.FromArray(new[] { 0.5f, 0f }, 2) }, 0.1f, compute: Compute.All);
        // Step 1: m̂ = g, v̂ = g², so the update is lr·sign(g) (and 0 for a zero gradient).
        Assert.Equal(0.9f, p["w"][0], 6);
        Assert.Equal(-2f, p["w"][1]);
        adam.Update(p, new Dictionary<string, Tensor> { ["w"] = Tensor.FromArray(new[] { -1f, 0f }, 2) }, 0.1f, compute: Compute.All);
        // m = 0.9·0.05 − 0.1 = −0.055, v = 0.999·0.00025 + 0.001 = 0.00124975;
        // m̂ = −0.055/0.19 = −0.2894737, v̂ = 0.00124975/0.001999 = 0.6251876; Δ = 0.1·m̂/√v̂ = −0.0366103.
        Assert.Equal(0.9366103f, p["w"][0], 5);
        Assert.Equal(2, adam.Step);
    }

    [Fact]
    public void AdamRejectsUnknownParameterAndBadBetas()
    {
        var p = new Dictionary<string, Tensor> { ["w"] = new Tensor(2) };
        var adam = new Adam(p);
        Assert.Throws<KeyNotFoundException>(() => adam.Update(p, new Dictionary<string, Tensor> { ["x"] = new Tensor(2) }, 0.1f, compute: Compute.All));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(p, beta1: 1f));
    }

    [Fact]
    public void ResetMomentsClearsOnlyChosenRows()
    {
        var p = new Dictionary<string, Tensor> { ["W"] = Tensor.Filled(1f, 3, 2) };
        var adam = new Adam(p);
        adam.Update(p, new Dictionary<string, Tensor> { ["W"] = Tensor.Filled(1f, 3, 2) }, 0.01f, compute: Compute.All);
        adam.ResetMoments("W", new[] { 1 }, axis: 0);
        Assert.Equal(0f, adam.FirstMoment["W"][1, 0]);
        Assert.Equal(0f, adam.SecondMoment["W"][1, 1]);
        Assert.NotEqual(0f, adam.FirstMoment["W"][0, 0]);
        adam.ResetMoments("W", new[] { 0 }, axis: 1);
        Assert.Equal(0f, adam.FirstMoment["W"][2, 0]);
        Assert.NotEqual(0f, adam.FirstMoment["W"][2, 1]);
    }

    [Fact]
    public void ClipGradNormScalesToMaxNorm()
    {
        var g = new[] { Tensor.FromArray(new[] { 3f }, 1), Tensor.FromArray(new[] { 4f }, 1) };
        double before = Adam.ClipGradNorm(g, 1.0, compute: Compute.All);
        Assert.Equal(5.0, before, 6);
        Assert.Equal(0.6f, g[0][0], 5);
        Assert.Equal(0.8f, g[1][0], 5);
    }

    [Fact]
    public void ClipGradNormOverManyChunksIsExactAndThreadIndependent()
    {
        // 200,003 elements: three full parallel pieces and a partial one; norm² = Σ i² for the first, 4·n for the second.
        int n = 200_003;
        Tensor[] Make() => [Tensor.FromArray(Enumerable.Range(0, n).Select(i => (float)(i % 7)).ToArray(), n), Tensor.FromArray(Enumerable.Repeat(2f, n).ToArray(), n)];
        double expected = Math.Sqrt(Enumerable.Range(0, n).Sum(i => (double)(i % 7) * (i % 7)) + 4.0 * n);
        var a = Make(); var b = Make();
        double na = Adam.ClipGradNorm(a, 10.0, Compute.Single), nb = Adam.ClipGradNorm(b, 10.0, new Compute(3));
        Assert.Equal(expected, na, 6);
        Assert.Equal(na, nb);
        Assert.Equal(a[0].Span.ToArray(), b[0].Span.ToArray());
        Assert.Equal(10.0, Math.Sqrt(a.Sum(t => t.Span.ToArray().Sum(v => (double)v * v))), 3);
    }

    [Fact]
    public void SchedulesAtChosenSteps()
    {
        var constant = new LrSchedule(1e-3, 100, WarmupSteps: 10);
        Assert.Equal(1e-4, constant.At(0), 12);
        Assert.Equal(5e-4, constant.At(4), 12);
        Assert.Equal(1e-3, constant.At(10), 12);
        Assert.Equal(1e-3, constant.At(99), 12);

        var cosine = new LrSchedule(1.0, 100, LrScheduler.Cosineannealing, LrEnd: 0.1);
        Assert.Equal(1.0, cosine.At(0), 12);
        Assert.Equal(0.55, cosine.At(50), 12);
        Assert.Equal(0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * 0.25)), cosine.At(25), 12);

        var decay = new LrSchedule(1.0, 100, DecaySteps: 20, LrEnd: 0.0);
        Assert.Equal(1.0, decay.At(79), 12);
        Assert.Equal(1.0, decay.At(80), 12);
        Assert.Equal(0.5, decay.At(90), 12);
        Assert.Equal(0.05, decay.At(99), 12);

        var restarts = new LrSchedule(1.0, 100, LrScheduler.Cosineannealingwarmrestarts, LrEnd: 0, RestartPeriod: 10);
        Assert.Equal(1.0, restarts.At(0), 12);
        Assert.Equal(0.5, restarts.At(5), 12);
        Assert.Equal(1.0, restarts.At(10), 12);

        var l1 = new CoefficientWarmup(5.0, 4);
        Assert.Equal(1.25, l1.At(0), 12);
        Assert.Equal(5.0, l1.At(3), 12);
        Assert.Equal(5.0, l1.At(1000), 12);

        Assert.Throws<ArgumentException>(() => new LrSchedule(1e-3, 10, WarmupSteps: 8, DecaySteps: 5).Validate());
    }
}
