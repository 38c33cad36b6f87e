using System.Diagnostics;
using System.Globalization;

namespace SaeSharp.Bench;

/// <summary>
/// The same GEMM shapes timed by a peer in another process: NumPy's <c>np.dot</c> on the system BLAS (Debian's
/// python3-numpy with libopenblas0-pthread: OpenBLAS), with as many threads as SaeSharp uses. Benchmarks only.
/// On Intel CPUs with AVX-512, OpenBLAS 0.3.21 does not recognise Sapphire/Emerald Rapids and falls back to a
/// slower kernel, so <c>OPENBLAS_CORETYPE=SkylakeX</c> is set there (its AVX-512 kernel); elsewhere OpenBLAS
/// picks its own.
/// </summary>
public sealed class GemmPeer
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

    private readonly int _threads;
    private readonly bool _skylakeX;

    private GemmPeer(int threads, bool skylakeX, string description)
    {
        _threads = threads;
        _skylakeX = skylakeX;
        Description = description;
    }

    /// <summary>The peer's NumPy and BLAS, as it reports them.</summary>
    public string Description { get; }

    /// <summary>The peer, or null (with the reason) when python3 with NumPy is not installed.</summary>
    public static GemmPeer? TryStart(int threads, out string why)
    {
        bool skylakeX = IntelAvx512();
        var (code, text) = new GemmPeer(threads, skylakeX, "").RunPython(0, 0, 0, false, false, 0);
        if (code != 0)
        {
            why = $"no peer: python3 with NumPy is needed (apt-get install python3-numpy libopenblas0-pthread): {text.Trim()}";
            return null;
        }
        why = "";
        return new GemmPeer(threads, skylakeX, text.Trim() + (skylakeX ? ", OPENBLAS_CORETYPE=SkylakeX" : ""));
    }

    /// <summary>GFLOP/s of op(A)·op(B), [m, k]·[k, n].</summary>
    public double GigaFlops(long m, long n, long k, bool transA, bool transB, int repeats)
    {
        var (code, text) = RunPython(m, n, k, transA, transB, repeats);
        if (code != 0) throw new InvalidOperationException($"GEMM peer failed: {text.Trim()}");
        return double.Parse(text.Trim(), CultureInfo.InvariantCulture);
    }

    // m = 0 asks the script to describe its NumPy and BLAS instead of timing.
    private (int Code, string Output) RunPython(long m, long n, long k, bool transA, bool transB, int repeats)
    {
        // Debian's interpreter, whose python3-numpy is the peer (a pyenv or venv python3 earlier on PATH may lack it).
        string python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new object[] { "-c", Script, m, n, k, transA ? 1 : 0, transB ? 1 : 0, repeats })
            psi.ArgumentList.Add(Convert.ToString(arg, CultureInfo.InvariantCulture)!);
        psi.Environment["OPENBLAS_NUM_THREADS"] = _threads.ToString(CultureInfo.InvariantCulture);
        if (_skylakeX) psi.Environment["OPENBLAS_CORETYPE"] = "SkylakeX";
        try
        {
            using var p = Process.Start(psi)!;
            var error = p.StandardError.ReadToEndAsync();
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output + error.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }

    private static bool IntelAvx512()
    {
        try
        {
            string info = File.ReadAllText("/proc/cpuinfo");
            return info.Contains("GenuineIntel", StringComparison.Ordinal) && info.Contains(" avx512f", StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
    }
}
