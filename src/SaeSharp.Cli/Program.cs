using System.CommandLine;
using SaeSharp.Cli.Commands;

namespace SaeSharp.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Parses and runs a command line; errors print one clear line and exit non-zero.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = BuildRoot();
        try
        {
            var parse = root.Parse(args);
            var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
            return parse.Invoke(config);
        }
        catch (Exception e) when (IsUserError(e))
        {
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException e)
        {
            // Ctrl+C or SIGTERM (Progress.InterruptToken): the job stopped at a safe point; its message says what it kept.
            stderr.WriteLine($"interrupted: {e.Message}");
            return 130;
        }
    }

    /// <summary>
    /// Failures caused by input, files or settings (not bugs): reported as one line. UnauthorizedAccessException is
    /// .NET's "permission denied" (and "is a directory"); its message names the path.
    /// </summary>
    public static bool IsUserError(Exception e) =>
        e is IOException or InvalidDataException or ArgumentException or InvalidOperationException or KeyNotFoundException
            or FormatException or NotSupportedException or UnauthorizedAccessException;

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("SaeSharp: sparse autoencoders for mechanistic interpretability, in .NET");
        // Each area of the CLI contributes its commands from its own file under Commands/.
        root.Add(BenchCommands.Build());
        root.Add(IoCommands.Build());
        root.Add(ModelCommands.Build());
        root.Add(SynthCommands.Build());
        root.Add(TrainCommands.Build());
        root.Add(EvalCommands.Build());
        foreach (var c in AnalyzeCommands.Build()) root.Add(c);
        root.Add(MatchCommands.Build());
        root.Add(DemoCommands.BuildDemo());
        root.Add(SaeCommands.Build());
        root.Add(TokenizeCommands.Build());
        foreach (var c in DataCommands.Build()) root.Add(c);
        foreach (var c in SteerCommands.Build()) root.Add(c);
        root.Add(ServeCommands.Build());
        return root;
    }
}
