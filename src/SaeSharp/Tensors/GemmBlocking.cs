using System.Runtime.Intrinsics.X86;

namespace SaeSharp.Tensors;

/// <summary>The micro-kernel instruction set: AVX-512 (12×32 tiles), AVX2 + FMA (6×16) or portable scalar (4×4).</summary>
internal enum GemmIsa { Avx512, Avx2, Scalar }

/// <summary>
/// A GEMM blocking (Goto/BLIS): the micro-kernel's tile (<see cref="Mr"/> × <see cref="Nr"/>), the depth of a k slice
/// (<see cref="Kc"/>), the rows of a packed A block (<see cref="Mc"/>) and the columns of a packed B panel
/// (<see cref="Nc"/>). Only the micro-kernel and Kc decide the order of every multiply-add (so the bits of C), and
/// both come from the instruction set and the cache sizes, never from timing or the thread count.
/// </summary>
internal readonly record struct GemmBlocking(GemmIsa Isa, int Mr, int Nr, int Kc, int Mc, int Nc, long L2 = 1 << 20)
{
    public static GemmIsa BestIsa { get; } = Avx512F.IsSupported ? GemmIsa.Avx512 : Avx2.IsSupported && Fma.IsSupported ? GemmIsa.Avx2 : GemmIsa.Scalar;

    /// <summary>A packed A block is this many micro-kernel rows tall.</summary>
    private const int McTiles = 20;

    /// <summary>
    /// The blocking for a micro-kernel and a cache: an A block (Mc × Kc) and one B sliver (Kc × Nr) fill about 80% of
    /// L2, Kc a multiple of 64 in [256, 4096], as deep as that allows, because C is read and written once per k slice and
    /// for the SAE shapes C is far larger than any cache (Kc 768 on a 1 MB L2 measured 4-6% faster than 256 on Zen 4;
    /// the rule gives 768 there and on a 512 KB L2 with AVX2's narrower tiles, 1,536 on a 2 MB L2). A B panel
    /// (Kc × Nc) takes at most half of L3, Nc in [512, 4096].
    /// </summary>
    public static GemmBlocking For(GemmIsa isa, CacheInfo cache)
    {
        var (mr, nr) = isa switch { GemmIsa.Avx512 => (12, 32), GemmIsa.Avx2 => (6, 16), _ => (4, 4) };
        int mc = McTiles * mr;
        long kc = (long)(0.8 * cache.L2) / ((mc + nr) * sizeof(float)) / 64 * 64;
        kc = Math.Clamp(kc, 256, 4096);
        long nc = cache.L3 / 2 / (kc * sizeof(float)) / 256 * 256;
        nc = Math.Clamp(nc, 512, 4096);
        return new GemmBlocking(isa, mr, nr, (int)kc, mc, (int)nc, cache.L2);
    }

    /// <summary>
    /// The rows of A packed per block when a thread's B panel is <paramref name="kc"/> × <paramref name="nc"/>: Mc, or
    /// twice that when the panel is over four L2s and the taller block still fits in 1.5 L2s. Each A block streams the
    /// whole panel from L3, so a taller block halves that stream. On Zen 3 (Mc 120, 512 KB L2, two threads, best of 16
    /// interleaved rounds, two runs) 240 rows were 3–10% faster on the wide SAE and MLP shapes (8–12 MB panels) and
    /// 2–5% slower on the tall ones (1.5 MB panels), which therefore keep Mc. Mc only sets how C is visited, not the
    /// order of any sum, so the bits do not change.
    /// </summary>
    public int McFor(int kc, int nc) =>
        (long)kc * nc * sizeof(float) > 4 * L2 && 2L * Mc * kc * sizeof(float) <= 3 * L2 / 2 ? 2 * Mc : Mc;

    /// <summary>Whether this machine can run the micro-kernel of <paramref name="isa"/>.</summary>
    public static bool Supported(GemmIsa isa) => isa switch
    {
        GemmIsa.Avx512 => Avx512F.IsSupported,
        GemmIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        _ => true,
    };

    public override string ToString() => $"{Isa} {Mr}x{Nr} micro-kernel, KC {Kc}, MC {Mc} ({McFor(Kc, Nc)} for B panels over 4 L2s), NC {Nc}";
}
