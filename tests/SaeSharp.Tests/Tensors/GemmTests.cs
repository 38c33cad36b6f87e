using SaeSharp.Tensors;

namespace SaeSharp.Tests.Tensors;

public class GemmTests
{
    // float64 reference of C = alpha·op(A)·op(B) + beta·C.
    private static double[] Reference(Trans ta, Trans tb, int m, int n, int k, float alpha, float[] a, int lda, float[] b, int ldb, float beta, float[] c, int ldc)
    {
        var r = new double[c.Length];
        for (int i = 0; i < c.Length; i++) r[i] = c[i];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double)(ta == Trans.No ? a[i * lda + p] : a[p * lda + i]) * (tb == Trans.No ? b[p * ldb + j] : b[j * ldb + p]);
                r[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * (double)c[i * ldc + j]);
            }
        return r;
    }

    public static IEnumerable<object[]> Shapes()
    {
        int[][] shapes =
        {
            new[] { 1, 1, 1 }, new[] { 3, 17, 31 }, new[] { 17, 3, 65 }, new[] { 31, 65, 130 }, new[] { 65, 130, 17 },
            new[] { 130, 31, 300 }, new[] { 257, 129, 513 }, new[] { 2, 300, 70 }, new[] { 13, 1, 33 }, new[] { 100, 37, 1 },
            // k over two KC (768) slices and a tail: the accumulate-into-C path.
            new[] { 37, 45, 1601 },
        };
        foreach (var s in shapes)
            foreach (var ta in new[] { Trans.No, Trans.Yes })
                foreach (var tb in new[] { Trans.No, Trans.Yes })
                    yield return new object[] { s[0], s[1], s[2], ta, tb };
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesFloat64Reference(int m, int n, int k, Trans ta, Trans tb)
    {
        var rng = new Rng((ulong)(m * 1000003 + n * 1009 + k * 7 + (int)ta * 2 + (int)tb));
        // Leading dimensions larger than the logical widths exercise strided access.
        int lda = (ta == Trans.No ? k : m) + 3, ldb = (tb == Trans.No ? n : k) + 5, ldc = n + 2;
        var a = new float[(ta == Trans.No ? m : k) * lda];
        var b = new float[(tb == Trans.No ? k : n) * ldb];
        rng.FillNormal(a);
        rng.FillNormal(b);
        foreach (var (alpha, beta) in new[] { (1f, 0f), (0.5f, 1f), (-1.5f, 0.25f) })
        {
            var c = new float[m * ldc];
            rng.FillNormal(c);
            if (beta == 0) c.AsSpan().Fill(float.NaN); // beta = 0 must overwrite, even NaN
            var expected = Reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, beta == 0 ? new float[c.Length] : c, ldc);
            var pad = (float[])c.Clone();
            Gemm.Multiply(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, new Compute(2));
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double e = expected[i * ldc + j];
                    double tol = 1e-5 * Math.Sqrt(k) * (1 + Math.Abs(e));
                    Assert.True(Math.Abs(c[i * ldc + j] - e) <= tol, $"C[{i},{j}] = {c[i * ldc + j]}, expected {e} (alpha {alpha}, beta {beta})");
                }
                for (int j = n; j < ldc && i < m - 1; j++)
                    Assert.Equal(pad[i * ldc + j], c[i * ldc + j]); // padding between rows untouched
            }
        }
    }

    [Theory]
    [InlineData(300, 200, 100, Trans.No, Trans.No)]
    [InlineData(100, 700, 90, Trans.No, Trans.Yes)]
    [InlineData(150, 160, 600, Trans.Yes, Trans.No)]
    [InlineData(70, 50, 1700, Trans.No, Trans.No)]
    public void ResultDoesNotDependOnThreadCount(int m, int n, int k, Trans ta, Trans tb)
    {
        var rng = new Rng(7);
        var a = new float[m * k];
        var b = new float[k * n];
        rng.FillNormal(a);
        rng.FillNormal(b);
        float[] Run(int threads)
        {
            var c = new float[m * n];
            Gemm.Multiply(ta, tb, m, n, k, 1, a, ta == Trans.No ? k : m, b, tb == Trans.No ? n : k, 0, c, n, new Compute(threads));
            return c;
        }
        var one = Run(1);
        Assert.Equal(one, Run(2));
        Assert.Equal(one, Run(3));
    }

    [Fact]
    public void ZeroInnerDimensionScalesC()
    {
        var c = new float[] { 1, 2, 3, 4 };
        Gemm.Multiply(Trans.No, Trans.No, 2, 2, 0, 1, Array.Empty<float>(), 1, Array.Empty<float>(), 2, 0.5f, c, 2, Compute.All);
        Assert.Equal(new float[] { 0.5f, 1, 1.5f, 2 }, c);
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => Gemm.Multiply(Trans.No, Trans.No, 4, 4, 4, 1, new float[15], 4, new float[16], 4, 0, new float[16], 4, Compute.All));
        Assert.Contains("GEMM A", e.Message);
        e = Assert.Throws<ArgumentException>(() => Gemm.Multiply(Trans.No, Trans.No, 4, 4, 4, 1, new float[16], 3, new float[16], 4, 0, new float[16], 4, Compute.All));
        Assert.Contains("leading dimension", e.Message);
        e = Assert.Throws<ArgumentException>(() => Gemm.MatMul(new Tensor(2, 3), new Tensor(4, 5), Compute.All));
        Assert.Contains("inner dimensions", e.Message);
    }

    /// <summary>The caches of the machines this project runs on (and a small one), for the blockings they lead to.</summary>
    private static readonly Dictionary<string, CacheInfo> Caches = new()
    {
        ["zen3"] = new(32 << 10, 512 << 10, 32 << 20, "AMD EPYC (Zen 3)", true),
        ["zen4"] = new(32 << 10, 1 << 20, 32 << 20, "AMD EPYC (Zen 4)", true),
        ["sapphire-rapids"] = new(48 << 10, 2 << 20, 105 << 20, "Intel Xeon (Sapphire Rapids)", true),
        ["small"] = new(32 << 10, 256 << 10, 4 << 20, "small caches", true),
        ["fallback"] = CacheInfo.Fallback,
    };

    public static IEnumerable<object[]> Blockings() =>
        from isa in Enum.GetNames<GemmIsa>()
        where GemmBlocking.Supported(Enum.Parse<GemmIsa>(isa))
        from cache in Caches.Keys
        select new object[] { isa, cache };

    [Theory]
    [MemberData(nameof(Blockings))]
    public void EveryBlockingTheCodeCanChooseMatchesTheReference(string isaName, string cacheName)
    {
        var blocking = GemmBlocking.For(Enum.Parse<GemmIsa>(isaName), Caches[cacheName]);
        // Shapes across the blocking's tiles, its KC slices (k beyond two of the deepest, 1,536) and its MC/NC blocks; the
        // last has B panels of over four L2s (for the Zen 3 and small caches), where the A blocks are twice as tall.
        foreach (var (m, n, k, ta, tb) in new[] { (37, 45, 3149, Trans.No, Trans.No), (131, 69, 900, Trans.Yes, Trans.No), (250, 4200, 40, Trans.No, Trans.Yes), (23, 300, 1601, Trans.Yes, Trans.Yes), (250, 1400, 770, Trans.No, Trans.No) })
        {
            var rng = new Rng((ulong)(m + n + k));
            int lda = ta == Trans.No ? k : m, ldb = tb == Trans.No ? n : k;
            var a = new float[(ta == Trans.No ? m : k) * lda];
            var b = new float[(tb == Trans.No ? k : n) * ldb];
            rng.FillNormal(a);
            rng.FillNormal(b);
            var c = new float[m * n];
            rng.FillNormal(c);
            var expected = Reference(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 1f, c, n);
            Gemm.Multiply(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 1f, c, n, new Compute(2), blocking);
            for (int i = 0; i < c.Length; i++)
                Assert.True(Math.Abs(c[i] - expected[i]) <= 1e-5 * Math.Sqrt(k) * (1 + Math.Abs(expected[i])), $"{blocking}: C[{i}] = {c[i]}, expected {expected[i]}");
            // And the same bits on one thread as on two.
            var c1 = new float[m * n];
            var c2 = new float[m * n];
            Gemm.Multiply(ta, tb, m, n, k, 1f, a, lda, b, ldb, 0f, c1, n, new Compute(1), blocking);
            Gemm.Multiply(ta, tb, m, n, k, 1f, a, lda, b, ldb, 0f, c2, n, new Compute(2), blocking);
            Assert.Equal(c1, c2);
        }
    }

    [Fact]
    public void BlockingFollowsTheCacheSizes()
    {
        // The k-slice depth that measured best on Zen 4 (768) comes out of the rule there and on Zen 3's smaller L2 with
        // AVX2's narrower tiles; a 2 MB L2 doubles it.
        Assert.Equal(768, GemmBlocking.For(GemmIsa.Avx512, Caches["zen4"]).Kc);
        Assert.Equal(768, GemmBlocking.For(GemmIsa.Avx2, Caches["zen3"]).Kc);
        Assert.Equal(1536, GemmBlocking.For(GemmIsa.Avx512, Caches["sapphire-rapids"]).Kc);
        Assert.Equal(256, GemmBlocking.For(GemmIsa.Avx512, Caches["small"]).Kc); // clamped at the floor
        var zen3 = GemmBlocking.For(GemmIsa.Avx2, Caches["zen3"]);
        Assert.True((zen3.Mc + zen3.Nr) * zen3.Kc * 4 <= 0.8 * (512 << 10));
        Assert.Equal(4096, zen3.Nc);
        // A wide B panel (768 × 4096: 12 MB) takes A blocks twice as tall (737 KB, within 1.5 L2s); a tall shape's
        // (768 × 512: 1.5 MB) keeps Mc.
        Assert.Equal(2 * zen3.Mc, zen3.McFor(768, 4096));
        Assert.Equal(zen3.Mc, zen3.McFor(768, 512));
        // The 250 x 1400 x 770 shape above, split by columns over two threads: 768 × 704 per thread (2.2 MB).
        Assert.Equal(2 * zen3.Mc, zen3.McFor(768, 704));
        Assert.Equal(1280, GemmBlocking.For(GemmIsa.Avx2, Caches["small"]).Nc); // 4 MB / 2 / (384 × 4 B), to a multiple of 256
    }

    [Fact]
    public void CacheSizesAreReadFromSysfs()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        void Level(string name, string level, string type, string size)
        {
            var d = Directory.CreateDirectory(Path.Combine(dir, name)).FullName;
            File.WriteAllText(Path.Combine(d, "level"), level + "\n");
            File.WriteAllText(Path.Combine(d, "type"), type + "\n");
            File.WriteAllText(Path.Combine(d, "size"), size + "\n");
        }
        Level("index0", "1", "Data", "48K");
        Level("index1", "1", "Instruction", "32K");
        Level("index2", "2", "Unified", "2048K");
        Level("index3", "3", "Unified", "105M");
        string cpuinfo = Path.Combine(dir, "cpuinfo");
        File.WriteAllText(cpuinfo, "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n");
        var c = CacheInfo.Read(dir, cpuinfo);
        Assert.Equal(new CacheInfo(48 << 10, 2 << 20, 105 << 20, "Intel(R) Xeon(R) Platinum 8480+", true), c);
        var none = CacheInfo.Read(Path.Combine(dir, "missing"), Path.Combine(dir, "missing"));
        Assert.False(none.Detected);
        Assert.Equal(CacheInfo.Fallback.L2, none.L2);
        Assert.Equal(0, CacheInfo.ParseSize("lots"));
        Directory.Delete(dir, true);
    }
}
