using System.Diagnostics;
using System.Globalization;

namespace SaeSharp.Bench;

/// <summary>
/// Runs a peer's Python script in Debian's interpreter with the BLAS environment every peer shares: as many
/// threads as SaeSharp uses, and on Intel CPUs with AVX-512 <c>OPENBLAS_CORETYPE=SkylakeX</c> (OpenBLAS 0.3.21 does
/// not recognise Sapphire/Emerald Rapids and falls back to a slower kernel; elsewhere OpenBLAS picks its own).
/// Benchmarks only.
/// </summary>
public sealed class PythonPeer(int threads)
{
    public int Threads { get; } = threads;

    /// <summary>Whether this CPU is an AVX-512 Intel one, where the peer runs with OPENBLAS_CORETYPE=SkylakeX.</summary>
    public bool SkylakeX { get; } = IntelAvx512();

    /// <summary>
    /// A peer whose <paramref name="script"/>, run with <paramref name="describeArgs"/>, describes its libraries
    /// (<paramref name="description"/>, with the core-type note); null with the reason when it cannot run, naming
    /// what is <paramref name="needed"/>.
    /// </summary>
    public static PythonPeer? TryStart(int threads, string script, object[] describeArgs, string needed, out string description, out string why)
    {
        var python = new PythonPeer(threads);
        var (code, text) = python.Run(script, describeArgs);
        description = why = "";
        if (code != 0)
        {
            why = $"no peer: python3 with {needed} is needed: {text.Trim()}";
            return null;
        }
        description = text.Trim() + (python.SkylakeX ? ", OPENBLAS_CORETYPE=SkylakeX" : "");
        return python;
    }

    /// <summary>The script's exit code and its standard output followed by its standard error.</summary>
    public (int Code, string Output) Run(string script, params object[] args)
    {
        // Debian's interpreter, whose python3-numpy / python3-torch are the peers (a pyenv or venv python3 earlier on PATH may lack them).
        string python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        foreach (var arg in args) psi.ArgumentList.Add(Convert.ToString(arg, CultureInfo.InvariantCulture)!);
        string n = Threads.ToString(CultureInfo.InvariantCulture);
        psi.Environment["OPENBLAS_NUM_THREADS"] = n;
        psi.Environment["OMP_NUM_THREADS"] = n;
        if (SkylakeX) psi.Environment["OPENBLAS_CORETYPE"] = "SkylakeX";
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
