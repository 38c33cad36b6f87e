using SaeSharp.Tensors;

namespace SaeSharp.Tests.Tensors;

public class ActivationKernelsTests
{
    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void ReluBackwardRowMatchesTheReferenceAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(46);
        foreach (int n in SimdPaths.AwkwardLengths)
            foreach (bool withAdd in new[] { false, true })
                foreach (bool reluSums in new[] { false, true })
                {
                    var pre = SimdPaths.Values(n, rng);
                    var grad = SimdPaths.Values(n, rng, 0);
                    var add = withAdd ? SimdPaths.Values(n, rng, 0) : null;
                    var gs = SimdPaths.Values(n, rng, 0).Select(v => (double)v).ToArray();
                    var rs = reluSums ? SimdPaths.Values(n, rng, 0).Select(v => (double)v).ToArray() : null;
                    var (ge, gse, rse) = ((float[])grad.Clone(), (double[])gs.Clone(), (double[]?)rs?.Clone());
                    for (int j = 0; j < n; j++)
                    {
                        ge[j] = pre[j] > 0 ? ge[j] + (add?[j] ?? 0) : 0;
                        gse[j] += ge[j];
                        if (rse is not null) rse[j] += pre[j] > 0 ? pre[j] : 0;
                    }
                    ActivationKernels.ReluBackwardRow(pre, grad, add, gs, rs, w);
                    Assert.Equal(ge, grad);
                    Assert.Equal(gse, gs);
                    if (rs is not null) Assert.Equal(rse, rs);
                }
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void JumpReluRowMatchesTheReferenceAtEveryWidth(string width)
    {
        var w = SimdPaths.Parse(width);
        var rng = new Rng(47);
        const float HalfWindow = 0.3f;
        foreach (int n in SimdPaths.AwkwardLengths)
        {
            var pre = SimdPaths.Values(n, rng);
            var th = SimdPaths.Values(n, rng, 0).Select(v => MathF.Abs(v) / 2).ToArray();
            var dead = Enumerable.Range(0, n).Select(_ => rng.Bernoulli(0.3) ? 1f : 0f).ToArray();
            var fExpected = new float[n];
            var needed = new List<int>();
            int aboveCount = 0;
            for (int j = 0; j < n; j++)
            {
                bool above = pre[j] > th[j];
                if (above) aboveCount++;
                fExpected[j] = above && pre[j] > 0 ? pre[j] : 0;
                if (above || MathF.Abs(pre[j] - th[j]) < HalfWindow || (th[j] > pre[j] && dead[j] > 0)) needed.Add(j);
            }
            var f = new float[n];
            Assert.Equal((needed.Count, aboveCount), ActivationKernels.JumpReluRow(pre, th, dead, HalfWindow, f, null, 0, w));
            Assert.Equal(fExpected, f);
            // Row 1 of three, so the writes must start at its RowStart and stay inside its slice.
            var codes = SparseCodes.FromRowCounts(n, [2, needed.Count, 1]);
            Array.Fill(codes.Index, -1);
            Array.Clear(f);
            Assert.Equal((needed.Count, aboveCount), ActivationKernels.JumpReluRow(pre, th, dead, HalfWindow, f, codes, 1, w));
            Assert.Equal(needed, codes.RowIndex(1).ToArray());
            Assert.Equal(needed.Select(j => fExpected[j]).ToArray(), codes.RowValue(1).ToArray());
            Assert.Equal([-1, -1], codes.RowIndex(0).ToArray());
            Assert.Equal([-1], codes.RowIndex(2).ToArray());
        }
    }
}
