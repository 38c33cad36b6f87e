using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SaeSharp.Tensors;

// The packed GEMM (Goto/BLIS structure):
//   for each NC-wide column panel of C (jc), for each KC-deep slice of k (pc):
//     pack op(B)[pc.., jc..] into NR-wide slivers (KC x NR each, row by row)
//     for each MC-tall row block (ic): pack op(A)[ic.., pc..] into MR-tall slivers (KC x MR each, column by column)
//       for each B sliver (jr): for each A sliver (ir): micro-kernel C[MR x NR] += A sliver · B sliver
// The B sliver (KC x NR floats) and the A block stay in L2, the micro-kernel streaming both. Threads split C into fixed
// contiguous ranges of rows (or of columns when C is wide), each thread packing its own operands, so every
// element of C is computed by the same instruction sequence whatever the thread count.
public static partial class Gemm
{
    /// <summary>The blocking of this machine: its widest micro-kernel and its cache sizes (<see cref="GemmBlocking.For"/>).</summary>
    internal static GemmBlocking Blocking { get; } = GemmBlocking.For(GemmBlocking.BestIsa, CacheInfo.Machine);

    /// <summary>Below this many multiply-adds the packing overhead is not worth it.</summary>
    private const long SmallWork = 16 * 1024;

    private static unsafe void Run(Trans ta, Trans tb, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, Compute compute, GemmBlocking blocking)
    {
        if (k == 0 || alpha == 0)
        {
            ScaleC(m, n, beta, c, ldc);
            return;
        }
        if ((long)m * n * k <= SmallWork || m <= 2)
        {
            Direct(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, compute);
            return;
        }
        var isa = blocking.Isa;
        int mr = blocking.Mr, nr = blocking.Nr;

        nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
        long work = (long)m * n * k;
        int maxParts = (int)Math.Max(1, Math.Min(compute.Threads, work / (1 << 20)));
        if (m >= n)
            compute.ForRange(m, Math.Max(mr, m / maxParts), (i0, i1) =>
                Block(blocking, ta, tb, i0, i1, 0, n, k, alpha, (float*)pa, lda, (float*)pb, ldb, beta, (float*)pc, ldc), mr);
        else
            compute.ForRange(n, Math.Max(nr, n / maxParts), (j0, j1) =>
                Block(blocking, ta, tb, 0, m, j0, j1, k, alpha, (float*)pa, lda, (float*)pb, ldb, beta, (float*)pc, ldc), nr);
    }

    private static unsafe void ScaleC(int m, int n, float beta, float* c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + (long)i * ldc, n);
            if (beta == 0) row.Clear();
            else if (beta != 1) TensorPrimitives.Multiply(row, beta, row);
        }
    }

    // Rows i0..i1 and columns j0..j1 of C, sequentially on the calling thread.
    private static unsafe void Block(GemmBlocking blocking, Trans ta, Trans tb, int i0, int i1, int j0, int j1, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        var isa = blocking.Isa;
        int mr = blocking.Mr, nr = blocking.Nr, KC = blocking.Kc, NC = blocking.Nc;
        int ncMax = Math.Min(NC, RoundUp(j1 - j0, nr));
        int kcMax = Math.Min(KC, k);
        int mc = blocking.McFor(kcMax, ncMax);
        var bufA = ArrayPool<float>.Shared.Rent(mc * kcMax + 64);
        var bufB = ArrayPool<float>.Shared.Rent(ncMax * kcMax + 64);
        try
        {
            fixed (float* bufAp = bufA, bufBp = bufB)
            {
                float* packA = Align64(bufAp), packB = Align64(bufBp);
                if (beta != 0 && beta != 1)
                    for (int i = i0; i < i1; i++) TensorPrimitives.Multiply(new Span<float>(c + (long)i * ldc + j0, j1 - j0), beta, new Span<float>(c + (long)i * ldc + j0, j1 - j0));
                for (int jc = j0; jc < j1; jc += NC)
                {
                    int nc = Math.Min(NC, j1 - jc);
                    for (int pc = 0; pc < k; pc += KC)
                    {
                        int kc = Math.Min(KC, k - pc);
                        bool overwrite = pc == 0 && beta == 0;
                        PackB(tb, b, ldb, pc, kc, jc, nc, nr, packB);
                        for (int ic = i0; ic < i1; ic += mc)
                        {
                            int mcCur = Math.Min(mc, i1 - ic);
                            PackA(ta, a, lda, ic, mcCur, pc, kc, mr, packA);
                            for (int jr = 0; jr < nc; jr += nr)
                            {
                                int nv = Math.Min(nr, nc - jr);
                                float* bs = packB + (long)jr * kc;
                                for (int ir = 0; ir < mcCur; ir += mr)
                                {
                                    int mv = Math.Min(mr, mcCur - ir);
                                    float* cs = c + (long)(ic + ir) * ldc + jc + jr;
                                    float* asl = packA + (long)ir * kc;
                                    if (mv == mr && nv == nr) Micro(isa, kc, asl, bs, cs, ldc, alpha, overwrite);
                                    else Edge(isa, mr, nr, kc, asl, bs, cs, ldc, mv, nv, alpha, overwrite);
                                }
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(bufA);
            ArrayPool<float>.Shared.Return(bufB);
        }
    }

    private static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    private static unsafe float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Micro(GemmIsa isa, int kc, float* a, float* b, float* c, int ldc, float alpha, bool overwrite)
    {
        if (isa == GemmIsa.Avx512) Kernel12x32(kc, a, b, c, ldc, alpha, overwrite);
        else if (isa == GemmIsa.Avx2) Kernel6x16(kc, a, b, c, ldc, alpha, overwrite);
        else Kernel4x4(kc, a, b, c, ldc, alpha, overwrite);
    }

    // Partial tile: run the full kernel into a scratch tile, then add the valid part.
    private static unsafe void Edge(GemmIsa isa, int mr, int nr, int kc, float* a, float* b, float* c, int ldc, int mv, int nv, float alpha, bool overwrite)
    {
        float* tile = stackalloc float[12 * 32];
        Micro(isa, kc, a, b, tile, nr, 1f, overwrite: true);
        for (int i = 0; i < mv; i++)
            for (int j = 0; j < nv; j++)
            {
                float v = alpha * tile[i * nr + j];
                c[(long)i * ldc + j] = overwrite ? v : c[(long)i * ldc + j] + v;
            }
    }

    // Transposed A: how many rows of A ahead PackA asks the cache for.
    private const int PrefetchRows = 8;

    // op(A)[ic.., pc..] (mcCur x kc) into slivers of mr rows: sliver s holds, for each p, mr consecutive values.
    // Both loops write the packed buffer sequentially; reads follow A's rows (NoTrans: mr streams along k;
    // Trans: one contiguous row segment of A per p, split over the slivers), which keeps TLB and cache misses low.
    // The packed buffer has 64 floats of slack past the block (Block rents it so): the 6-row path stores 8 floats
    // per k step, the last two overwritten by the next step, the next sliver, or landing in the slack.
    private static unsafe void PackA(Trans ta, float* a, int lda, int ic, int mcCur, int pc, int kc, int mr, float* dst)
    {
        if (ta == Trans.No)
        {
            float** rows = stackalloc float*[mr];
            for (int ir = 0; ir < mcCur; ir += mr)
            {
                int mv = Math.Min(mr, mcCur - ir);
                float* d = dst + (long)ir * kc;
                for (int i = 0; i < mv; i++) rows[i] = a + (long)(ic + ir + i) * lda + pc;
                if (mv == 6 && mr == 6 && Avx.IsSupported) PackSix(rows, kc, d);
                else if (mv == 12)
                {
                    float* r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3], r4 = rows[4], r5 = rows[5];
                    float* r6 = rows[6], r7 = rows[7], r8 = rows[8], r9 = rows[9], r10 = rows[10], r11 = rows[11];
                    for (int p = 0; p < kc; p++, d += 12)
                    {
                        d[0] = r0[p]; d[1] = r1[p]; d[2] = r2[p]; d[3] = r3[p]; d[4] = r4[p]; d[5] = r5[p];
                        d[6] = r6[p]; d[7] = r7[p]; d[8] = r8[p]; d[9] = r9[p]; d[10] = r10[p]; d[11] = r11[p];
                    }
                }
                else
                {
                    for (int p = 0; p < kc; p++, d += mr)
                    {
                        for (int i = 0; i < mv; i++) d[i] = rows[i][p];
                        for (int i = mv; i < mr; i++) d[i] = 0;
                    }
                }
            }
        }
        else
        {
            for (int p = 0; p < kc; p++)
            {
                float* src = a + (long)(pc + p) * lda + ic;
                // Rows of A are lda apart, a stride the hardware prefetcher does not follow: fetch a few rows ahead.
                if (p + PrefetchRows < kc)
                    for (int i = 0; i < mcCur; i += 16) Sse.Prefetch0(src + PrefetchRows * (long)lda + i);
                for (int ir = 0; ir < mcCur; ir += mr)
                {
                    int mv = Math.Min(mr, mcCur - ir);
                    float* d = dst + (long)ir * kc + p * mr;
                    if (mv == mr) CopyShort(src + ir, d, mr);
                    else
                    {
                        for (int i = 0; i < mv; i++) d[i] = src[ir + i];
                        for (int i = mv; i < mr; i++) d[i] = 0;
                    }
                }
            }
        }
    }

    // Six rows of A, kc steps each, into one 6-row sliver: 8 steps at a time as an 8×8 transpose (two rows zero),
    // each step's 8 floats stored over the next step's first two (see PackA on the slack).
    private static unsafe void PackSix(float** rows, int kc, float* d)
    {
        float* r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3], r4 = rows[4], r5 = rows[5];
        var zero = Vector256<float>.Zero;
        int p = 0;
        for (; p + 8 <= kc; p += 8, d += 48)
        {
            Transpose8(Avx.LoadVector256(r0 + p), Avx.LoadVector256(r1 + p), Avx.LoadVector256(r2 + p), Avx.LoadVector256(r3 + p),
                Avx.LoadVector256(r4 + p), Avx.LoadVector256(r5 + p), zero, zero,
                out var t0, out var t1, out var t2, out var t3, out var t4, out var t5, out var t6, out var t7);
            Avx.Store(d, t0); Avx.Store(d + 6, t1); Avx.Store(d + 12, t2); Avx.Store(d + 18, t3);
            Avx.Store(d + 24, t4); Avx.Store(d + 30, t5); Avx.Store(d + 36, t6); Avx.Store(d + 42, t7);
        }
        for (; p < kc; p++, d += 6)
        {
            d[0] = r0[p]; d[1] = r1[p]; d[2] = r2[p]; d[3] = r3[p]; d[4] = r4[p]; d[5] = r5[p];
        }
    }

    // out_p[j] = r_j[p]: the 8×8 transpose of eight rows of eight floats.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8(Vector256<float> r0, Vector256<float> r1, Vector256<float> r2, Vector256<float> r3,
        Vector256<float> r4, Vector256<float> r5, Vector256<float> r6, Vector256<float> r7,
        out Vector256<float> o0, out Vector256<float> o1, out Vector256<float> o2, out Vector256<float> o3,
        out Vector256<float> o4, out Vector256<float> o5, out Vector256<float> o6, out Vector256<float> o7)
    {
        // Pairs of rows interleaved, then quads, then the 128-bit halves swapped into place.
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        o0 = Avx.Permute2x128(u0, u4, 0x20); o1 = Avx.Permute2x128(u1, u5, 0x20);
        o2 = Avx.Permute2x128(u2, u6, 0x20); o3 = Avx.Permute2x128(u3, u7, 0x20);
        o4 = Avx.Permute2x128(u0, u4, 0x31); o5 = Avx.Permute2x128(u1, u5, 0x31);
        o6 = Avx.Permute2x128(u2, u6, 0x31); o7 = Avx.Permute2x128(u3, u7, 0x31);
    }

    // The 8×8 transpose of the eight rows of eight floats at s, s + stride, ..., s + 7·stride (PackB's transposed B,
    // the sparse kernels' transposed adds).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void Transpose8(float* s, long stride,
        out Vector256<float> o0, out Vector256<float> o1, out Vector256<float> o2, out Vector256<float> o3,
        out Vector256<float> o4, out Vector256<float> o5, out Vector256<float> o6, out Vector256<float> o7) =>
        Transpose8(Avx.LoadVector256(s), Avx.LoadVector256(s + stride), Avx.LoadVector256(s + 2 * stride), Avx.LoadVector256(s + 3 * stride),
            Avx.LoadVector256(s + 4 * stride), Avx.LoadVector256(s + 5 * stride), Avx.LoadVector256(s + 6 * stride), Avx.LoadVector256(s + 7 * stride),
            out o0, out o1, out o2, out o3, out o4, out o5, out o6, out o7);

    // count (4, 6, 12, 16 or 32: a tile edge) floats from src to dst, with no read or write past either.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void CopyShort(float* src, float* dst, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= count; i += 8) Vector256.Store(Vector256.Load(src + i), dst + i);
        for (; i + 4 <= count; i += 4) Vector128.Store(Vector128.Load(src + i), dst + i);
        for (; i < count; i++) dst[i] = src[i];
    }

    // op(B)[pc.., jc..] (kc x nc) into slivers of nr columns: sliver s holds, for each p, nr consecutive values.
    private static unsafe void PackB(Trans tb, float* b, int ldb, int pc, int kc, int jc, int nc, int nr, float* dst)
    {
        if (tb == Trans.No)
        {
            // Four slivers per pass, so each row of B is read as one run of 4·nr floats.
            const int Group = 4;
            for (int jg = 0; jg < nc; jg += Group * nr)
            {
                int full = Math.Min(Group, (nc - jg) / nr);
                for (int p = 0; p < kc; p++)
                {
                    float* src = b + (long)(pc + p) * ldb + jc + jg;
                    for (int g = 0; g < full; g++) CopyShort(src + g * nr, dst + (long)(jg + g * nr) * kc + p * nr, nr);
                }
                int jr = jg + full * nr;
                if (full < Group && jr < nc)
                {
                    // The last, partial sliver: its columns, then zeros.
                    int nv = nc - jr;
                    float* d = dst + (long)jr * kc;
                    for (int p = 0; p < kc; p++)
                    {
                        float* src = b + (long)(pc + p) * ldb + jc + jr;
                        float* dd = d + p * nr;
                        for (int j = 0; j < nv; j++) dd[j] = src[j];
                        for (int j = nv; j < nr; j++) dd[j] = 0;
                    }
                }
            }
            return;
        }
        for (int jr = 0; jr < nc; jr += nr)
        {
            int nv = Math.Min(nr, nc - jr);
            float* d = dst + (long)jr * kc;
            int j0 = 0;
            if (Avx.IsSupported && nv == nr)
                // 8 columns × 8 k-steps at a time: eight rows of op(B)ᵀ, transposed in registers.
                for (; j0 + 8 <= nv; j0 += 8)
                {
                    float* s0 = b + (long)(jc + jr + j0) * ldb + pc;
                    int p = 0;
                    for (; p + 8 <= kc; p += 8)
                    {
                        Transpose8(s0 + p, ldb, out var t0, out var t1, out var t2, out var t3, out var t4, out var t5, out var t6, out var t7);
                        float* dd = d + (long)p * nr + j0;
                        Avx.Store(dd, t0); Avx.Store(dd + nr, t1); Avx.Store(dd + 2 * nr, t2); Avx.Store(dd + 3 * nr, t3);
                        Avx.Store(dd + 4 * nr, t4); Avx.Store(dd + 5 * nr, t5); Avx.Store(dd + 6 * nr, t6); Avx.Store(dd + 7 * nr, t7);
                    }
                    for (; p < kc; p++)
                        for (int j = j0; j < j0 + 8; j++) d[p * nr + j] = b[(long)(jc + jr + j) * ldb + pc + p];
                }
            // The remaining columns (all of them without AVX, or in a partial sliver): blocks of 16 k-steps, so each
            // source cache line is read once and the 16 destination rows being written stay in L1.
            for (int p0 = 0; p0 < kc; p0 += 16)
            {
                int pe = Math.Min(kc, p0 + 16);
                for (int j = j0; j < nv; j++)
                {
                    float* src = b + (long)(jc + jr + j) * ldb + pc;
                    for (int p = p0; p < pe; p++) d[p * nr + j] = src[p];
                }
            }
            if (nv < nr)
                for (int p = 0; p < kc; p++)
                    for (int j = nv; j < nr; j++) d[p * nr + j] = 0;
        }
    }

    // Small products: one row of C at a time with vectorised dot products / axpys.
    private static unsafe void Direct(Trans ta, Trans tb, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, Compute compute)
    {
        nint pa = (nint)a, pb = (nint)b, pcn = (nint)c;
        void Rows(int i0, int i1)
        {
            float* A = (float*)pa, B = (float*)pb, C = (float*)pcn;
            float[]? aRow = ta == Trans.Yes ? new float[k] : null;
            var acc = new float[n];
            for (int i = i0; i < i1; i++)
            {
                ReadOnlySpan<float> ai;
                if (ta == Trans.No) ai = new ReadOnlySpan<float>(A + (long)i * lda, k);
                else
                {
                    for (int p = 0; p < k; p++) aRow![p] = A[(long)p * lda + i];
                    ai = aRow;
                }
                if (tb == Trans.Yes)
                    for (int j = 0; j < n; j++) acc[j] = TensorPrimitives.Dot(ai, new ReadOnlySpan<float>(B + (long)j * ldb, k));
                else
                {
                    Array.Clear(acc);
                    for (int p = 0; p < k; p++)
                        if (ai[p] != 0) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(B + (long)p * ldb, n), ai[p], acc, acc);
                }
                var ci = new Span<float>(C + (long)i * ldc, n);
                if (beta == 0) TensorPrimitives.Multiply(acc, alpha, ci);
                else
                {
                    if (beta != 1) TensorPrimitives.Multiply(ci, beta, ci);
                    TensorPrimitives.MultiplyAdd(acc, alpha, ci, ci);
                }
            }
        }
        long work = (long)m * n * k;
        if (work < (1 << 20) || m == 1)
        {
            if (m == 1 && work >= (1 << 18) && compute.Threads > 1) DirectSingleRowParallel(ta, tb, n, k, alpha, a, lda, b, ldb, beta, c, compute);
            else Rows(0, m);
        }
        else compute.ForRange(m, 1, Rows);
    }

    // One row of C split by columns across threads (matrix-vector products during generation).
    private static unsafe void DirectSingleRowParallel(Trans ta, Trans tb, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, Compute compute)
    {
        var aRow = new float[k];
        for (int p = 0; p < k; p++) aRow[p] = ta == Trans.No ? a[p] : a[(long)p * lda];
        nint pb = (nint)b, pcn = (nint)c;
        compute.ForRange(n, 64, (j0, j1) =>
        {
            float* B = (float*)pb, C = (float*)pcn;
            var acc = new float[j1 - j0];
            if (tb == Trans.Yes)
                for (int j = j0; j < j1; j++) acc[j - j0] = TensorPrimitives.Dot(aRow, new ReadOnlySpan<float>(B + (long)j * ldb, k));
            else
                for (int p = 0; p < k; p++)
                    if (aRow[p] != 0) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(B + (long)p * ldb + j0, j1 - j0), aRow[p], acc, acc);
            var ci = new Span<float>(C + j0, j1 - j0);
            if (beta == 0) TensorPrimitives.Multiply(acc, alpha, ci);
            else
            {
                if (beta != 1) TensorPrimitives.Multiply(ci, beta, ci);
                TensorPrimitives.MultiplyAdd(acc, alpha, ci, ci);
            }
        }, 16);
    }
}
