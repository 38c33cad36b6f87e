using System.Diagnostics;

namespace SaeSharp.Tests.Cli;

/// <summary>Runs the saesharp CLI in-process (fast) or as a real child process (for kill tests).</summary>
public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = SaeSharp.Cli.Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>Starts `dotnet saesharp.dll args` as a separate process.</summary>
    public static Process Start(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "saesharp.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start saesharp");
    }
}
