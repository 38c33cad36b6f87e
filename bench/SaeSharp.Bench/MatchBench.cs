using System.Diagnostics;
using SaeSharp.Analysis;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Bench;

/// <summary>
/// `saesharp bench match`: the time to match two 16k-latent SAEs by the cosine of their activations over 100k tokens
/// (<see cref="FeatureMatching.ByActivations"/>: blocked sparse cosines and the assignment with its dual checks), on
/// synthetic codes (<see cref="SyntheticCodePair"/>: Zipf-distributed firings, about 40 latents per token, 75% of the
/// latents shared up to a permutation, with dropout and magnitude noise). Also one full pass of the cosine products,
/// and a dense GEMM measured in the same run as the yardstick for a shared machine.
/// </summary>
public static class MatchBench
{
    public static int Run(TextWriter o, bool quick)
    {
        var compute = Compute.All;
        int latents = quick ? 2048 : 16384, tokens = quick ? 10_000 : 100_000;
        var sw = Stopwatch.StartNew();
        var pair = SyntheticCodePair.Create(latents, latents, tokens, sharedFraction: 0.75, seed: 17, compute: compute);
        double make = sw.Elapsed.TotalSeconds;
        o.WriteLine($"match benchmark: two SAEs of {latents:N0} latents over {tokens:N0} tokens (synthetic codes: L0 {pair.Reference.Count / (double)tokens:F1} and {pair.Other.Count / (double)tokens:F1}, 75% shared), {compute.Threads} threads; codes drawn in {make:F1} s");

        int g = quick ? 512 : 2048;
        var a = new Tensor(g, g);
        new Rng(1).FillNormal(a.Span);
        double gemm = BenchUtil.BestSeconds(() => Gemm.MatMul(a, a, compute: compute), quick ? 1 : 3);
        o.WriteLine($"  reference: dense GEMM {g}x{g}x{g}           {BenchUtil.Ms(gemm)}  ({2.0 * g * g * g / gemm / 1e9:F1} GFLOP/s)");

        // One pass of the co-activation products over every block, as the solver's first read of the matrix.
        var columns = pair.Reference.ToColumns();
        int block = Math.Max(1, (1 << 24) / latents);
        var dest = new double[(long)block * latents];
        var which = new int[block];
        sw.Restart();
        for (int start = 0; start < latents; start += block)
        {
            int count = Math.Min(block, latents - start);
            for (int r = 0; r < count; r++) which[r] = start + r;
            SparseKernels.TransposedProduct(columns, pair.Other, which, count, dest, compute);
        }
        double pass = sw.Elapsed.TotalSeconds;
        o.WriteLine($"  one pass of the cosine products:    {BenchUtil.Ms(pass)}  ({pass / gemm:F1} GEMMs)");

        sw.Restart();
        var m = FeatureMatching.ByActivations(pair.Reference, pair.Other, compute);
        double match = sw.Elapsed.TotalSeconds;
        int planted = 0, recovered = 0;
        for (int i = 0; i < latents; i++)
        {
            if (pair.Planted[i] < 0 || m.DeadReference[i] || m.DeadOther[pair.Planted[i]]) continue;
            planted++;
            if (m.Partner[i] == pair.Planted[i]) recovered++;
        }
        o.WriteLine($"  match (cosines + assignment):       {BenchUtil.Ms(match)}  ({match / gemm:F1} GEMMs; {m.Rounds} rounds, {m.RowsRead / (double)latents:F2} passes' worth of cosine rows, {m.CandidatePairs:N0} candidate pairs of {(long)latents * latents:N0})");
        o.WriteLine($"  planted pairs recovered:            {recovered:N0} of {planted:N0}; dead latents {m.DeadReference.Count(d => d)} and {m.DeadOther.Count(d => d)}");
        return 0;
    }
}
