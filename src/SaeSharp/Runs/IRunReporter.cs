using SaeSharp.Training;

namespace SaeSharp.Runs;

/// <summary>
/// How a job reports while it runs: the progress of its training loops and its text lines. The CLI shows progress
/// bars on a terminal; a script passes a <see cref="TextReporter"/> (plain lines) or its own implementation.
/// </summary>
public interface IRunReporter
{
    /// <summary>Runs <paramref name="work"/>, showing the progress it reports under <paramref name="title"/> (a line every <paramref name="logEvery"/> steps when not a bar).</summary>
    T Track<T>(string title, long logEvery, Func<Action<TrainProgress>, T> work);

    void WriteLine(string line);
}

/// <summary>Plain progress lines to a text writer: a line every <c>logEvery</c> steps and on the last, and every epoch summary.</summary>
public sealed class TextReporter(TextWriter output) : IRunReporter
{
    /// <summary>Reports nothing.</summary>
    public static TextReporter Silent { get; } = new(TextWriter.Null);

    public T Track<T>(string title, long logEvery, Func<Action<TrainProgress>, T> work) => work(p =>
    {
        if (p.Step % Math.Max(1, logEvery) == 0 || p.Step == p.TotalSteps)
        {
            if (p.Saes is null) output.WriteLine($"{title}: {TrainRun.Describe(p)}");
            else
            {
                output.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{title}: step {p.Step}/{p.TotalSteps}  {p.TokensPerSecond:N0} tok/s"));
                foreach (var (name, sae) in p.Saes) output.WriteLine($"  {name}: {TrainRun.Describe(sae)}");
            }
        }
        if (p.Epoch is not null) output.WriteLine($"{title}: {TrainRun.DescribeEpoch(p.Epoch)}");
    });

    public void WriteLine(string line) => output.WriteLine(line);
}
