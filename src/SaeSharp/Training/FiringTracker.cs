using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>
/// Per-latent firing statistics: steps since each latent last fired (a latent is dead after
/// <see cref="DeadWindow"/> steps without firing, which feeds AuxK and resampling) and firing counts over a
/// sampling window for the log10 feature density that SAELens logs and saves as sparsity.safetensors.
/// </summary>
public sealed class FiringTracker
{
    public int Latents { get; }
    public long DeadWindow { get; }
    /// <summary>Steps since each latent last fired.</summary>
    public long[] StepsSinceFired { get; }
    /// <summary>Firing counts accumulated since the density window began.</summary>
    public long[] WindowCounts { get; }
    public long WindowTokens { get; set; }
    /// <summary>Firing counts over the whole run (never reset), telling latents that never fired from those dead lately.</summary>
    public long[] TotalCounts { get; }

    public FiringTracker(int latents, long deadWindow)
    {
        if (deadWindow < 1) throw new ArgumentOutOfRangeException(nameof(deadWindow), $"dead_feature_window must be at least 1, got {deadWindow}");
        Latents = latents;
        DeadWindow = deadWindow;
        StepsSinceFired = new long[latents];
        WindowCounts = new long[latents];
        TotalCounts = new long[latents];
    }

    /// <summary>Records one training step whose latent codes are <paramref name="codes"/> (a latent fires when its value is positive).</summary>
    public void Record(SparseCodes codes, Compute compute) => Record(codes.FiringCounts(compute), codes.Rows);

    /// <summary>Records one step from dense latent activations [batch, latents].</summary>
    public void Record(Tensor activations, Compute compute) => Record(SparseCodes.FromDense(activations, compute), compute);

    /// <summary>Records one step of <paramref name="tokens"/> rows given how many rows each latent fired on.</summary>
    public void Record(int[] firingCounts, int tokens)
    {
        if (firingCounts.Length != Latents) throw new ArgumentException($"firing counts cover {firingCounts.Length} latents, tracker has {Latents}");
        var fired = new bool[Latents];
        for (int j = 0; j < Latents; j++) { WindowCounts[j] += firingCounts[j]; TotalCounts[j] += firingCounts[j]; fired[j] = firingCounts[j] > 0; }
        Advance(fired, tokens);
    }

    private void Advance(bool[] fired, int tokens)
    {
        for (int j = 0; j < Latents; j++) StepsSinceFired[j] = fired[j] ? 0 : StepsSinceFired[j] + 1;
        WindowTokens += tokens;
    }

    public bool[] DeadMask()
    {
        var mask = new bool[Latents];
        for (int j = 0; j < Latents; j++) mask[j] = StepsSinceFired[j] >= DeadWindow;
        return mask;
    }

    public int DeadCount => StepsSinceFired.Count(s => s >= DeadWindow);

    /// <summary>Latents that have not fired once since the tracker began.</summary>
    public int NeverFiredCount => TotalCounts.Count(c => c == 0);

    /// <summary>log10 of each latent's firing frequency over the window (log10(1e-10) for never), as SAELens.</summary>
    public float[] Log10Density()
    {
        var d = new float[Latents];
        for (int j = 0; j < Latents; j++)
            d[j] = (float)Math.Log10(WindowCounts[j] / (double)Math.Max(1, WindowTokens) + 1e-10);
        return d;
    }

    public void ResetWindow()
    {
        Array.Clear(WindowCounts);
        WindowTokens = 0;
    }
}
