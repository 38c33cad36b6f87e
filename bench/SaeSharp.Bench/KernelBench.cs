using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Bench;

/// <summary>`saesharp bench kernels`: FMA peak, GEMM for SAE shapes against it, top-k and sparse decode.</summary>
public static class KernelBench
{
    public static int Run(TextWriter o, bool quick, bool withPeer = false)
    {
        var all = Compute.All;
        GemmPeer? peer = null;
        if (withPeer)
        {
            peer = GemmPeer.TryStart(all.Threads, out string why);
            o.WriteLine(peer is null ? why : $"peer: {peer.Description}, {all.Threads} threads, each shape timed in four rounds alternating with SaeSharp's, the best of each side");
        }
        o.WriteLine($"SaeSharp kernel benchmark — {Environment.ProcessorCount} logical cores, AVX-512: {Vector512.IsHardwareAccelerated}{(quick ? " (quick)" : "")}");
        o.WriteLine($"CPU: {CacheInfo.Machine}");
        o.WriteLine($"GEMM blocking chosen: {Gemm.Blocking}");
        double peak1 = MeasureFmaPeak(Compute.Single, quick);
        double peakAll = MeasureFmaPeak(all, quick);
        o.WriteLine($"FMA peak (in-process): {peak1:F1} GFLOP/s on 1 thread, {peakAll:F1} GFLOP/s on {all.Threads} threads");

        int B = quick ? 1024 : 4096, dIn = 512, dSae = quick ? 4096 : 16384, k = 32;
        o.WriteLine($"GEMM, all threads (B={B}, d_in={dIn}, d_sae={dSae}):");
        var rng = new Rng(1);
        var x = Tensor.Uninitialized(B, dIn); rng.FillNormal(x.Span);
        var wEnc = Tensor.Uninitialized(dIn, dSae); rng.FillNormal(wEnc.Span);
        var wDec = Tensor.Uninitialized(dSae, dIn); rng.FillNormal(wDec.Span);
        var f = Tensor.Uninitialized(B, dSae); rng.FillNormal(f.Span);
        var err = Tensor.Uninitialized(B, dIn); rng.FillNormal(err.Span);
        var outSae = Tensor.Uninitialized(B, dSae);
        var outIn = Tensor.Uninitialized(B, dIn);
        var gDec = Tensor.Uninitialized(dSae, dIn);
        var gEnc = Tensor.Uninitialized(dIn, dSae);
        var cases = new (string Name, Action Run, long M, long N, long K, bool TA, bool TB)[]
        {
            ($"NN encode   x·W_enc      {B}x{dIn}·{dIn}x{dSae}", () => Gemm.MatMul(x, wEnc, outSae, compute: all), B, dSae, dIn, false, false),
            ($"NN decode   f·W_dec      {B}x{dSae}·{dSae}x{dIn}", () => Gemm.MatMul(f, wDec, outIn, compute: all), B, dIn, dSae, false, false),
            ($"NT grad f   err·W_decᵀ   {B}x{dIn}·({dSae}x{dIn})ᵀ", () => Gemm.MatMul(err, wDec, outSae, transB: Trans.Yes, compute: all), B, dSae, dIn, false, true),
            ($"NT grad x   df·W_encᵀ    {B}x{dSae}·({dIn}x{dSae})ᵀ", () => Gemm.MatMul(f, wEnc, outIn, transB: Trans.Yes, compute: all), B, dIn, dSae, false, true),
            ($"TN grad dec fᵀ·err       ({B}x{dSae})ᵀ·{B}x{dIn}", () => Gemm.MatMul(f, err, gDec, transA: Trans.Yes, compute: all), dSae, dIn, B, true, false),
            ($"TN grad enc xᵀ·df        ({B}x{dIn})ᵀ·{B}x{dSae}", () => Gemm.MatMul(x, f, gEnc, transA: Trans.Yes, compute: all), dIn, dSae, B, true, false),
        };
        foreach (var c in cases) Report(o, c.Name, c.Run, c.M, c.N, c.K, c.TA, c.TB, peakAll, quick, peer);
        Transformer(o, peakAll, quick, peer);

        var codes = SparseCodes.Fixed(B, dSae, k);
        double topS = BenchUtil.BestSeconds(() => TopK.Rows(f, k, relu: true, codes, all), quick ? 1 : 3);
        o.WriteLine($"Row top-k (k={k} of {dSae}): {B / topS:N0} rows/s ({BenchUtil.Ms(topS).Trim()} for {B} rows)");
        double batchS = BenchUtil.BestSeconds(() => TopK.Batch(f, k * B, all), quick ? 1 : 3);
        o.WriteLine($"Batch top-k (k·B={k * B} of {(long)B * dSae}): {B / batchS:N0} rows/s ({BenchUtil.Ms(batchS).Trim()})");
        double decS = BenchUtil.BestSeconds(() => SparseKernels.Decode(codes, wDec, outIn, all), quick ? 1 : 3);
        double bytes = (double)B * k * dIn * 4 + (double)B * dIn * 4;
        o.WriteLine($"Sparse decode ({B}x{dSae}, k={k}, d_in={dIn}): {BenchUtil.Ms(decS).Trim()}, {bytes / decS / 1e9:F1} GB/s of decoder rows read + output written");
        SimdLoops(o, f, k, quick);
        return 0;
    }

    /// <summary>
    /// The hand-vectorised loops (<see cref="ISimdLoop"/> kernels) at each width the machine accelerates, on one
    /// thread over the [B, d_sae] latents, with each width's time as a ratio to the scalar path's.
    /// </summary>
    private static void SimdLoops(TextWriter o, Tensor f, int k, bool quick)
    {
        var widths = Enum.GetValues<SimdWidth>().Where(w => w <= Simd.Best).ToArray();
        int rows = quick ? 256 : f.Rows, cols = f.Cols;
        var pre = f.RowSlice(0, rows);
        var sparse = pre.Clone(); // about 2% non-zero, as a trained SAE's latents
        foreach (ref float v in sparse.Span) v = Math.Max(0, v - 2);
        var grad = pre.Clone();
        var threshold = Enumerable.Repeat(0.5f, cols).ToArray();
        var deadLanes = new float[cols];
        var features = new float[cols];
        var sums = new double[cols]; var reluSums = new double[cols];
        var colSums = new float[cols];
        var counts = new int[rows];
        var values = new float[k]; var indices = new int[k];
        var found = new List<long>();
        var p = pre.Clone(); var moment1 = new float[p.Length]; var moment2 = new float[p.Length];
        var cases = new (string Name, Action<SimdWidth> Run)[]
        {
            ("column sums (float64)", w => Ops.SumRows(pre, colSums, false, Compute.Single, w)),
            ("ReLU backward", w => { for (int r = 0; r < rows; r++) ActivationKernels.ReluBackwardRow(pre.Row(r), grad.Row(r), threshold, sums, reluSums, w); }),
            ("JumpReLU forward", w => { for (int r = 0; r < rows; r++) ActivationKernels.JumpReluRow(pre.Row(r), threshold, deadLanes, 0.001f, features, null, 0, w); }),
            ("Adam update", w => Adam.UpdateSlice(p.Span, pre.Span, moment1, moment2, 0.9f, 0.999f, 1e-8f, 1e-9f, 1f, w)),
            ("non-zero count", w => { for (int r = 0; r < rows; r++) counts[r] = SparseCodes.CountNonZero(sparse.Row(r), w); }),
            ("dense to codes", w => SparseCodes.FromDense(sparse, counts, Compute.Single, w)),
            ($"row top-k scan, k={k}", w => { for (int r = 0; r < rows; r++) TopK.SelectRow(pre.Row(r), k, values, indices, w); }),
            ("values above a cut", w => { found.Clear(); for (int r = 0; r < rows; r++) TopK.CollectAbove(pre.Row(r), 2.5f, (long)r * cols, found, w); }),
        };
        o.WriteLine($"Hand-vectorised loops, 1 thread, {rows}x{cols} (time, and its ratio to the scalar path):");
        foreach (var (name, run) in cases)
        {
            var line = new System.Text.StringBuilder($"  {name,-24}");
            double scalar = 0;
            foreach (var w in widths)
            {
                double sec = BenchUtil.BestSeconds(() => run(w), quick ? 1 : 3);
                if (w == SimdWidth.Scalar) scalar = sec;
                line.Append($"  {w,-6} {BenchUtil.Ms(sec)} ({sec / scalar,4:F2})");
            }
            o.WriteLine(line.ToString());
        }
    }

    private static void Report(TextWriter o, string name, Action run, long m, long n, long k, bool transA, bool transB, double peak, bool quick, GemmPeer? peer)
    {
        // With a peer, four rounds of (SaeSharp, peer), each side's best kept: a shared VM's speed drifts by 10-15%
        // over a minute, and alternating lets both sides meet the same machine. Each side times as many calls per
        // round as fill about a third of a second (at least three): with two rounds of three calls the 30 ms
        // transformer shapes read anywhere from 0.7 to 1.1 of the peer from one run to the next.
        int rounds = peer is null || quick ? 1 : 4;
        double s = double.MaxValue, theirs = 0;
        // The share of peak is to the FMA peak probed right before and after this shape (the better of the two), not
        // the run's first probe: the drift would otherwise move the share by as much as the kernels differ.
        var all = Compute.All;
        double peakHere = quick ? peak : MeasureFmaPeak(all, quick);
        int calls = quick ? 1 : 3;
        for (int round = 0; round < rounds; round++)
        {
            s = Math.Min(s, BenchUtil.BestSeconds(run, calls));
            if (round == 0 && !quick) calls = Math.Clamp((int)(0.33 / s), 3, 30);
            if (peer is not null) theirs = Math.Max(theirs, peer.GigaFlops(m, n, k, transA, transB, calls));
        }
        if (!quick) peakHere = Math.Max(peakHere, MeasureFmaPeak(all, quick));
        double gf = 2.0 * m * n * k / s / 1e9;
        string versus = peer is null ? "" : $"  peer {theirs,7:F1} GFLOP/s  ratio {gf / theirs,5:F2}";
        o.WriteLine($"  {name,-52} {BenchUtil.Ms(s)}  {gf,7:F1} GFLOP/s  {100 * gf / peakHere,5:F1}% of peak ({peakHere:F0} beside it){versus}");
    }

    /// <summary>The GEMMs of a GPT-2-small block (d_model 768, 12 heads, d_mlp 3072, vocab 50,257) over 8 × 128 tokens.</summary>
    private static void Transformer(TextWriter o, double peak, bool quick, GemmPeer? peer)
    {
        const int D = 768, Mlp = 3072, Vocab = 50257;
        int t = quick ? 256 : 1024;
        var all = Compute.All;
        var rng = new Rng(2);
        Tensor R(int r, int c) { var x = Tensor.Uninitialized(r, c); rng.FillNormal(x.Span); return x; }
        var x = R(t, D);
        var wQkv = R(D, 3 * D);
        var wO = R(D, D);
        var wIn = R(D, Mlp);
        var wOut = R(Mlp, D);
        var h = R(t, Mlp);
        var emb = R(quick ? 8192 : Vocab, D);
        // Outputs allocated once, as the peer's np.dot(out=c): the figures are the GEMM's, not a fresh buffer's page faults.
        var qkv = Tensor.Uninitialized(t, 3 * D); var attn = Tensor.Uninitialized(t, D); var mlp = Tensor.Uninitialized(t, Mlp);
        var logits = Tensor.Uninitialized(t, emb.Rows);
        o.WriteLine($"GEMM, GPT-2-small shapes over {t} tokens:");
        Report(o, $"QKV        x·W_qkv      {t}x{D}·{D}x{3 * D}", () => Gemm.MatMul(x, wQkv, qkv, all), t, 3 * D, D, false, false, peak, quick, peer);
        Report(o, $"attn out   z·W_O        {t}x{D}·{D}x{D}", () => Gemm.MatMul(x, wO, attn, all), t, D, D, false, false, peak, quick, peer);
        Report(o, $"MLP in     x·W_in       {t}x{D}·{D}x{Mlp}", () => Gemm.MatMul(x, wIn, mlp, all), t, Mlp, D, false, false, peak, quick, peer);
        Report(o, $"MLP out    h·W_out      {t}x{Mlp}·{Mlp}x{D}", () => Gemm.MatMul(h, wOut, attn, all), t, D, Mlp, false, false, peak, quick, peer);
        Report(o, $"unembed    x·W_Eᵀ       {t}x{D}·({emb.Rows}x{D})ᵀ", () => Gemm.MatMul(x, emb, logits, all, transB: Trans.Yes), t, emb.Rows, D, false, true, peak, quick, peer);
    }

    /// <summary>
    /// Measured fp32 FMA throughput: independent vector FMA chains in registers on as many threads as
    /// <paramref name="compute"/> has, each its own dedicated thread released by one barrier and timing itself, the
    /// rates summed. (One wall time around pool tasks counted a late-starting task's wait as slowness: on 2 vCPUs the
    /// probe read below the GEMM it was meant to bound.)
    /// </summary>
    public static double MeasureFmaPeak(Compute compute, bool quick)
    {
        long iterations = quick ? 20_000_000 : 100_000_000;
        int lanes = Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 4;
        int n = compute.Threads;
        var rates = new double[n];
        using var start = new Barrier(n);
        var threads = Enumerable.Range(0, n).Select(t => new Thread(() =>
        {
            FmaChains(1000); // JIT warm-up
            start.SignalAndWait();
            var sw = Stopwatch.StartNew();
            FmaChains(iterations);
            rates[t] = iterations * 12.0 * lanes * 2 / sw.Elapsed.TotalSeconds;
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        return rates.Sum() / 1e9;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaChains(long iterations)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var m = Vector512.Create(0.999999f); var add = Vector512.Create(1e-7f);
            Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
            for (long i = 0; i < iterations; i++)
            {
                a0 = Vector512.FusedMultiplyAdd(a0, m, add); a1 = Vector512.FusedMultiplyAdd(a1, m, add);
                a2 = Vector512.FusedMultiplyAdd(a2, m, add); a3 = Vector512.FusedMultiplyAdd(a3, m, add);
                a4 = Vector512.FusedMultiplyAdd(a4, m, add); a5 = Vector512.FusedMultiplyAdd(a5, m, add);
                a6 = Vector512.FusedMultiplyAdd(a6, m, add); a7 = Vector512.FusedMultiplyAdd(a7, m, add);
                a8 = Vector512.FusedMultiplyAdd(a8, m, add); a9 = Vector512.FusedMultiplyAdd(a9, m, add);
                a10 = Vector512.FusedMultiplyAdd(a10, m, add); a11 = Vector512.FusedMultiplyAdd(a11, m, add);
            }
            return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
        }
        var mm = Vector256.Create(0.999999f); var ad = Vector256.Create(1e-7f);
        Vector256<float> b0 = Vector256.Create(1f), b1 = b0, b2 = b0, b3 = b0, b4 = b0, b5 = b0, b6 = b0, b7 = b0, b8 = b0, b9 = b0, b10 = b0, b11 = b0;
        for (long i = 0; i < iterations; i++)
        {
            b0 = Vector256.FusedMultiplyAdd(b0, mm, ad); b1 = Vector256.FusedMultiplyAdd(b1, mm, ad);
            b2 = Vector256.FusedMultiplyAdd(b2, mm, ad); b3 = Vector256.FusedMultiplyAdd(b3, mm, ad);
            b4 = Vector256.FusedMultiplyAdd(b4, mm, ad); b5 = Vector256.FusedMultiplyAdd(b5, mm, ad);
            b6 = Vector256.FusedMultiplyAdd(b6, mm, ad); b7 = Vector256.FusedMultiplyAdd(b7, mm, ad);
            b8 = Vector256.FusedMultiplyAdd(b8, mm, ad); b9 = Vector256.FusedMultiplyAdd(b9, mm, ad);
            b10 = Vector256.FusedMultiplyAdd(b10, mm, ad); b11 = Vector256.FusedMultiplyAdd(b11, mm, ad);
        }
        return Vector256.Sum(b0 + b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8 + b9 + b10 + b11);
    }
}

/// <summary>`saesharp bench kernels --blocking`: the SAE and transformer GEMM shapes on one thread under other blockings than the one chosen.</summary>
public static class BlockingSweep
{
    public static void Run(TextWriter o, bool quick)
    {
        var chosen = Gemm.Blocking;
        var one = Compute.Single;
        var rng = new Rng(5);
        int B = quick ? 512 : 2048;
        (string Name, Trans TA, Trans TB, int M, int N, int K)[] shapes =
        [
            ("NN encode", Trans.No, Trans.No, B, 4096, 512),
            ("NT grad f", Trans.No, Trans.Yes, B, 4096, 512),
            ("TN grad dec", Trans.Yes, Trans.No, 4096, 512, B),
            ("NN MLP out", Trans.No, Trans.No, B / 2, 768, 3072),
        ];
        int[] kcs = [256, 384, 512, 768, 1024];
        int[] mcTiles = [10, 20, 40];
        o.WriteLine($"GEMM blockings on 1 thread (chosen: {chosen}); GFLOP/s, each the best of interleaved rounds:");
        foreach (var (name, ta, tb, m, n, k) in shapes)
        {
            var a = new float[(long)m * k]; var b = new float[(long)k * n]; var c = new float[(long)m * n];
            rng.FillNormal(a); rng.FillNormal(b);
            int lda = ta == Trans.No ? k : m, ldb = tb == Trans.No ? n : k;
            // Each MC as given: an L2 too large for any panel to exceed four of keeps McFor from doubling it.
            var blockings = (from kc in kcs from t in mcTiles select chosen with { Kc = kc, Mc = t * chosen.Mr, L2 = long.MaxValue / 8 }).ToList();
            var best = new double[blockings.Count];
            for (int round = 0; round < (quick ? 1 : 3); round++)
                for (int i = 0; i < blockings.Count; i++)
                {
                    var bl = blockings[i];
                    double s = BenchUtil.BestSeconds(() => Gemm.Multiply(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, n, one, bl), 1);
                    best[i] = Math.Max(best[i], 2.0 * m * n * k / s / 1e9);
                }
            o.WriteLine($"  {name} {m}x{n}x{k}:");
            foreach (var kc in kcs)
                o.WriteLine($"    KC {kc,4}: " + string.Join("  ", mcTiles.Select(t => $"MC {t * chosen.Mr,3} {best[blockings.FindIndex(x => x.Kc == kc && x.Mc == t * chosen.Mr)],6:F1}")));
        }
    }
}
