using System.Globalization;

namespace SaeSharp.Bench;

/// <summary>
/// The same GEMM shapes timed by a peer in another process: NumPy's <c>np.dot</c> on the system BLAS (Debian's
/// python3-numpy with libopenblas0-pthread: OpenBLAS), in <see cref="PythonPeer"/>'s environment. Benchmarks only.
/// </summary>
public sealed class GemmPeer(PythonPeer python, string description)
{
    // One shape per run: best of `reps` after a warm-up, printed as GFLOP/s. Transposed operands are views, so
    // np.dot passes them to sgemm as transposes, as SaeSharp's GEMM reads them.
    private const string Script = """
        import ctypes, sys, time
        import numpy as np
        m, n, k, ta, tb, reps = (int(v) for v in sys.argv[1:7])
        if m == 0:
            try:
                lib = ctypes.CDLL("libopenblas.so.0")
                lib.openblas_get_config.restype = ctypes.c_char_p
                lib.openblas_get_corename.restype = ctypes.c_char_p
                print("numpy", np.__version__, "on", lib.openblas_get_config().decode(), "core", lib.openblas_get_corename().decode())
            except OSError:
                print("numpy", np.__version__, "(not on OpenBLAS)")
            sys.exit(0)
        rng = np.random.default_rng(1)
        a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        A = a.T if ta else a
        B = b.T if tb else b
        c = np.empty((m, n), np.float32)
        np.dot(A, B, out=c)
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            np.dot(A, B, out=c)
            best = min(best, time.perf_counter() - t)
        print(2.0 * m * n * k / best / 1e9)
        """;

    /// <summary>The peer's NumPy and BLAS, as it reports them.</summary>
    public string Description { get; } = description;

    /// <summary>The peer, or null (with the reason) when python3 with NumPy is not installed.</summary>
    public static GemmPeer? TryStart(int threads, out string why)
    {
        var python = PythonPeer.TryStart(threads, Script, [0, 0, 0, 0, 0, 0], "NumPy (apt-get install python3-numpy libopenblas0-pthread)", out string description, out why);
        return python is null ? null : new GemmPeer(python, description);
    }

    /// <summary>GFLOP/s of op(A)·op(B), [m, k]·[k, n].</summary>
    public double GigaFlops(long m, long n, long k, bool transA, bool transB, int repeats)
    {
        var (code, text) = python.Run(Script, m, n, k, transA ? 1 : 0, transB ? 1 : 0, repeats);
        if (code != 0) throw new InvalidOperationException($"GEMM peer failed: {text.Trim()}");
        return double.Parse(text.Trim(), CultureInfo.InvariantCulture);
    }
}
