namespace SaeSharp.Tensors;

/// <summary>
/// How much parallelism a kernel may use. Passed explicitly (no hidden global thread count) so a caller
/// can pin work to one core; kernels split work by a fixed partition of <see cref="Threads"/> parts, so the
/// result never depends on thread timing.
/// </summary>
public sealed record Compute(int Threads)
{
    /// <summary>All logical processors of this machine.</summary>
    public static Compute All { get; } = new(Environment.ProcessorCount);

    /// <summary>One thread: no task scheduling at all.</summary>
    public static Compute Single { get; } = new(1);

    public int Threads { get; } = Threads >= 1 ? Threads : throw new ArgumentOutOfRangeException(nameof(Threads), "Threads must be at least 1");

    /// <summary>Runs body(part) for part in [0, parts), on up to <see cref="Threads"/> threads.</summary>
    public void For(int parts, Action<int> body)
    {
        if (parts <= 0) return;
        if (parts == 1 || Threads == 1)
        {
            for (int p = 0; p < parts; p++) body(p);
            return;
        }
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = Threads }, body);
    }

    /// <summary>
    /// Splits [0, count) into at most <see cref="Threads"/> contiguous ranges whose starts are multiples of
    /// <paramref name="align"/>, and runs body(start, end) for each; the split depends only on the arguments.
    /// </summary>
    public void ForRange(int count, int minPerPart, Action<int, int> body, int align = 1)
    {
        if (count <= 0) return;
        int parts = Math.Max(1, Math.Min(Threads, count / Math.Max(1, minPerPart)));
        if (parts == 1) { body(0, count); return; }
        int units = (count + align - 1) / align;
        parts = Math.Min(parts, units);
        For(parts, p =>
        {
            int s = (int)((long)units * p / parts) * align;
            int e = Math.Min(count, (int)((long)units * (p + 1) / parts) * align);
            if (s < e) body(s, e);
        });
    }
}
