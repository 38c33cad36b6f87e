using System.Runtime.InteropServices;
using SaeSharp.Cli.Runs;
using SaeSharp.Training;
using Spectre.Console;

namespace SaeSharp.Cli;

/// <summary>Progress display and interruption for long-running commands.</summary>
public static class Progress
{
    /// <summary>
    /// Runs <paramref name="work"/> with a progress callback: a Spectre.Console bar when stdout is an interactive
    /// terminal, otherwise a plain log line every <paramref name="logEvery"/> steps (and on the last).
    /// </summary>
    public static T Run<T>(string title, TextWriter output, long logEvery, Func<Action<TrainProgress>, T> work)
    {
        bool interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (!interactive)
            return work(p =>
            {
                if (p.Step % Math.Max(1, logEvery) == 0 || p.Step == p.TotalSteps) output.WriteLine($"{title}: {TrainRun.Describe(p)}");
                if (p.Epoch is not null) output.WriteLine($"{title}: {TrainRun.DescribeEpoch(p.Epoch)}");
            });
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
                    task.Description = Markup.Escape($"{title}  loss {p.Loss:F4}  L0 {p.L0:F1}  EV {p.ExplainedVariance:F3}  {p.TokensPerSecond:N0} tok/s");
                    if (p.Epoch is not null) AnsiConsole.MarkupLine(Markup.Escape($"{title}: {TrainRun.DescribeEpoch(p.Epoch)}"));
                });
            });
        return result;
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
