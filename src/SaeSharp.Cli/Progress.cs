using System.Runtime.InteropServices;
using SaeSharp.Runs;
using SaeSharp.Training;
using Spectre.Console;

namespace SaeSharp.Cli;

/// <summary>Progress display and interruption for long-running commands.</summary>
public static class Progress
{
    /// <summary>
    /// The reporter for <paramref name="output"/>: Spectre.Console progress bars when it is the console of an
    /// interactive terminal, otherwise plain log lines (<see cref="TextReporter"/>).
    /// </summary>
    public static IRunReporter For(TextWriter output)
    {
        bool interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        return interactive ? new BarReporter() : new TextReporter(output);
    }

    /// <summary>Runs <paramref name="work"/> with its progress shown on <paramref name="output"/> (see <see cref="For"/>).</summary>
    public static T Run<T>(string title, TextWriter output, long logEvery, Func<Action<TrainProgress>, T> work) =>
        For(output).Track(title, logEvery, work);

    private sealed class BarReporter : IRunReporter
    {
        public void WriteLine(string line) => AnsiConsole.WriteLine(line);

        public T Track<T>(string title, long logEvery, Func<Action<TrainProgress>, T> work)
        {
            T result = default!;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(title), maxValue: 1);
                    result = work(p =>
                    {
                        task.MaxValue = p.TotalSteps;
                        task.Value = p.Step;
                        task.Description = Markup.Escape(p.Saes is null
                            ? $"{title}  loss {p.Loss:F4}  L0 {p.L0:F1}  EV {p.ExplainedVariance:F3}  {p.TokensPerSecond:N0} tok/s"
                            : $"{title}  {p.TokensPerSecond:N0} tok/s  " + string.Join("  ", p.Saes.Select(kv => $"{kv.Key}: L0 {kv.Value.L0:F1} EV {kv.Value.ExplainedVariance:F3}")));
                        if (p.Epoch is not null) AnsiConsole.MarkupLine(Markup.Escape($"{title}: {TrainRun.DescribeEpoch(p.Epoch)}"));
                    });
                });
            return result;
        }
    }

    /// <summary>A token cancelled by SIGINT (Ctrl+C) or SIGTERM, so training can checkpoint and exit cleanly.</summary>
    public static (CancellationTokenSource Source, IDisposable Registration) InterruptToken()
    {
        var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); };
        Console.CancelKeyPress += onCancel;
        var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });
        return (cts, new Unregister(() => { Console.CancelKeyPress -= onCancel; term.Dispose(); }));
    }

    private sealed class Unregister(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
