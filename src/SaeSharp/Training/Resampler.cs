using System.Globalization;
using System.Numerics.Tensors;
using SaeSharp.Data;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Training;

/// <summary>The latents one resampling re-initialised and the reservoir rows each was given.</summary>
public sealed record ResampleResult(int[] Latents, int[] SourceRows)
{
    public int Count => Latents.Length;
    public static ResampleResult None { get; } = new([], []);
}

/// <summary>
/// Dead-latent resampling (Anthropic "Towards Monosemanticity", drrik's <c>resample_dead_neurons</c>). The
/// resampler keeps its own per-latent count of steps since each latent last fired (a latent is dead when it has
/// not fired for <see cref="Window"/> steps) and a reservoir of the most recent <see cref="Samples"/> input rows.
/// On <see cref="Resample"/>, every dead latent j gets a reservoir row x drawn with probability ∝ e², where e is
/// that row's summed squared reconstruction error under the current weights (drrik: per-sample summed squared
/// error, squared), and is re-initialised: W_dec[j, :] = x/‖x‖, W_enc[:, j] = 0.2 · (mean encoder-column norm of
/// the live latents) · x/‖x‖, encoder biases of j = 0, and the Adam moments of all of these reset to zero. All
/// state (counters, reservoir, RNG) goes into checkpoints, so a resumed run resamples exactly as a straight one.
/// </summary>
public sealed class Resampler
{
    /// <summary>drrik's scale of the new encoder column relative to the mean live column norm.</summary>
    public const double EncoderScale = 0.2;
    /// <summary>Mean encoder norm assumed when every latent is dead (drrik).</summary>
    public const double FallbackEncoderNorm = 0.1;
    /// <summary>Per-latent encoder biases zeroed on resampling, whichever of them the architecture has.</summary>
    private static readonly string[] LatentBiases = ["b_enc", "b_gate", "b_mag", "r_mag"];

    public int DIn { get; }
    public int Latents { get; }
    public long Window { get; }
    public int Samples { get; }
    /// <summary>Steps since each latent last fired (reset to 0 when a latent is resampled).</summary>
    public long[] StepsSinceFired { get; }
    /// <summary>Ring buffer of the most recent input rows [Samples, d_in]; the first <see cref="Filled"/> rows are valid.</summary>
    public Tensor Reservoir { get; }
    public int Filled { get; private set; }
    /// <summary>Slot the next recorded row goes to.</summary>
    public int NextSlot { get; private set; }
    public Rng Rng { get; private set; }

    public Resampler(int dIn, int latents, long window, int samples, ulong seed)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), $"resample_window must be at least 1, got {window}");
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), $"resample_samples must be at least 1, got {samples}");
        DIn = dIn; Latents = latents; Window = window; Samples = samples;
        StepsSinceFired = new long[latents];
        Reservoir = new Tensor(samples, dIn);
        Rng = new Rng(seed);
    }

    /// <summary>Records one training step: its input rows (the newest go into the reservoir) and which latents fired.</summary>
    /// <param name="firingCounts">How many rows each latent fired on (<see cref="SparseCodes.FiringCounts"/>).</param>
    public void Record(Tensor batch, int[] firingCounts)
    {
        if (batch.Cols != DIn) throw new ArgumentException($"batch has {batch.Cols} columns, the resampler expects {DIn}");
        if (firingCounts.Length != Latents) throw new ArgumentException($"firing counts cover {firingCounts.Length} latents, the resampler expects {Latents}");
        for (int j = 0; j < Latents; j++) StepsSinceFired[j] = firingCounts[j] > 0 ? 0 : StepsSinceFired[j] + 1;
        int keep = Math.Min(batch.Rows, Samples);
        for (int r = batch.Rows - keep; r < batch.Rows; r++)
        {
            batch.Row(r).CopyTo(Reservoir.Row(NextSlot));
            NextSlot = (NextSlot + 1) % Samples;
            if (Filled < Samples) Filled++;
        }
    }

    /// <summary>Latents that have not fired in the last <see cref="Window"/> steps, ascending.</summary>
    public int[] DeadLatents()
    {
        var dead = new List<int>();
        for (int j = 0; j < Latents; j++) if (StepsSinceFired[j] >= Window) dead.Add(j);
        return dead.ToArray();
    }

    /// <summary>
    /// drrik's sampling weights: for each row, (Σ_i (x_i − x̂_i)²)². Rows of zero norm (which cannot give a
    /// direction) get weight 0.
    /// </summary>
    public static double[] SampleWeights(Tensor x, Tensor reconstruction)
    {
        reconstruction.EnsureShape("reconstruction", x.Shape.ToArray());
        var w = new double[x.Rows];
        for (int r = 0; r < x.Rows; r++)
        {
            var a = x.Row(r); var b = reconstruction.Row(r);
            double err = 0, norm = 0;
            for (int i = 0; i < a.Length; i++)
            {
                double e = a[i] - b[i];
                err += e * e;
                norm += (double)a[i] * a[i];
            }
            w[r] = norm > 0 ? err * err : 0;
        }
        return w;
    }

    /// <summary>
    /// <paramref name="count"/> row indices drawn independently (with replacement, as drrik's one multinomial draw per
    /// dead latent) with probability ∝ <paramref name="weights"/>; uniform over rows of positive
    /// <paramref name="fallback"/> when every weight is zero (a perfect reconstruction).
    /// </summary>
    public static int[] Draw(ReadOnlySpan<double> weights, int count, Rng rng, ReadOnlySpan<double> fallback = default)
    {
        double total = 0;
        foreach (double v in weights) total += v;
        if (total > 0 && double.IsFinite(total)) return rng.Multinomial(weights, count, replacement: true);
        if (fallback.IsEmpty) throw new ArgumentException("every sampling weight is zero and there is no fallback");
        var uniform = new double[fallback.Length];
        for (int i = 0; i < uniform.Length; i++) uniform[i] = fallback[i] > 0 ? 1 : 0;
        return rng.Multinomial(uniform, count, replacement: true);
    }

    /// <summary>
    /// Re-initialises every dead latent of <paramref name="sae"/> (see the class summary) and zeroes its Adam moments.
    /// Does nothing when no latent is dead or the reservoir holds no usable row.
    /// </summary>
    public ResampleResult Resample(ITrainableSae sae, Adam adam)
    {
        var dead = DeadLatents();
        if (dead.Length == 0 || Filled == 0) return ResampleResult.None;
        var p = sae.Parameters;
        var wEnc = p.TryGetValue("W_enc", out var we) ? we : throw new NotSupportedException("resampling needs a W_enc parameter");
        var wDec = p.TryGetValue("W_dec", out var wd) ? wd : throw new NotSupportedException("resampling needs a W_dec parameter");
        wEnc.EnsureShape("W_enc", DIn, Latents);
        wDec.EnsureShape("W_dec", Latents, DIn);

        var rows = Reservoir.RowSlice(0, Filled);
        var eval = sae.Evaluate(rows);
        var weights = SampleWeights(rows, eval.Reconstruction);
        var norms = new double[Filled];
        for (int r = 0; r < Filled; r++) norms[r] = TensorPrimitives.Norm(rows.Row(r));
        if (norms.All(n => n == 0)) return ResampleResult.None;
        var picks = Draw(weights, dead.Length, Rng, norms);

        // Mean encoder-column norm over the latents that stay (drrik's avg_encoder_norm), before any is changed.
        var isDead = new bool[Latents];
        foreach (int j in dead) isDead[j] = true;
        var colSq = new double[Latents];
        for (int i = 0; i < DIn; i++)
        {
            var row = wEnc.Row(i);
            for (int j = 0; j < Latents; j++) colSq[j] += (double)row[j] * row[j];
        }
        double sum = 0;
        int alive = 0;
        for (int j = 0; j < Latents; j++) if (!isDead[j]) { sum += Math.Sqrt(colSq[j]); alive++; }
        double meanAlive = alive > 0 ? sum / alive : FallbackEncoderNorm;
        float encScale = (float)(EncoderScale * meanAlive);

        var direction = new float[DIn];
        for (int k = 0; k < dead.Length; k++)
        {
            int j = dead[k];
            var x = rows.Row(picks[k]);
            TensorPrimitives.Divide(x, (float)TensorPrimitives.Norm(x), direction);
            direction.CopyTo(wDec.Row(j));
            for (int i = 0; i < DIn; i++) wEnc[i, j] = encScale * direction[i];
            StepsSinceFired[j] = 0;
        }
        adam.ResetMoments("W_dec", dead, axis: 0);
        adam.ResetMoments("W_enc", dead, axis: 1);
        foreach (var name in LatentBiases)
        {
            if (!p.TryGetValue(name, out var b) || b.Rank != 1 || b.Length != Latents) continue;
            foreach (int j in dead) b[j] = 0;
            adam.ResetMoments(name, dead, axis: 0);
        }
        return new ResampleResult(dead, picks);
    }

    /// <summary>Writes the resampler's state into a checkpoint (keys under "resampler.").</summary>
    public void Save(Checkpoint cp)
    {
        cp.Integers["resampler.steps_since_fired"] = StepsSinceFired;
        cp.Tensors["resampler.reservoir"] = Reservoir;
        cp.State["resampler.filled"] = Filled.ToString(CultureInfo.InvariantCulture);
        cp.State["resampler.next_slot"] = NextSlot.ToString(CultureInfo.InvariantCulture);
        cp.State["resampler.rng"] = RngStateCodec.Encode(Rng.State);
    }

    /// <summary>Restores the state <see cref="Save"/> wrote; the shapes must match this resampler's settings.</summary>
    public void Restore(Checkpoint cp)
    {
        var steps = cp.RequireIntegers("resampler.steps_since_fired");
        var reservoir = cp.RequireTensor("resampler.reservoir");
        if (steps.Length != Latents || !reservoir.SameShape(Reservoir))
            throw new InvalidDataException($"checkpoint resampler state has {steps.Length} latents and a [{reservoir.ShapeString}] reservoir; " +
                                           $"this run has {Latents} latents and resample_samples {Samples} (d_in {DIn})");
        int filled = int.Parse(cp.Require("resampler.filled"), CultureInfo.InvariantCulture);
        int next = int.Parse(cp.Require("resampler.next_slot"), CultureInfo.InvariantCulture);
        if (filled < 0 || filled > Samples || next < 0 || next >= Samples)
            throw new InvalidDataException($"checkpoint resampler state is corrupt (filled {filled}, next slot {next}, {Samples} samples)");
        steps.CopyTo(StepsSinceFired, 0);
        reservoir.Span.CopyTo(Reservoir.Span);
        Filled = filled;
        NextSlot = next;
        try { Rng = Rng.FromState(RngStateCodec.Decode(cp.Require("resampler.rng"))); }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            throw new InvalidDataException($"checkpoint resampler RNG state is corrupt: {e.Message}");
        }
    }
}
