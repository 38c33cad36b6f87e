using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Evals;

/// <summary>A sum and a count, for means streamed over batches.</summary>
public struct RunningMean
{
    public double Sum;
    public long Count;

    public void Add(double sum, long count) { Sum += sum; Count += count; }
    public readonly double Mean => Sum / Count;
}

/// <summary>
/// Next-token cross-entropy and KL(clean ‖ patched) of one batch, as SAELens's get_recons_loss measures them. The
/// clean run's logits <c>[batch, T, vocab]</c> are the reference. Positions follow <see cref="LatentBatch"/>'s row
/// order; <c>keep</c> selects the rows that count: the cross-entropy at row (b, t) is the loss of predicting token
/// t+1 and counts when row (b, t) is kept (SAELens masks the predicting position), the KL at every kept row. Each
/// row's log-softmax is taken with float32 vector exponentials summed in float64; per-row terms are added in row
/// order, so the sums do not depend on the thread count.
/// </summary>
public sealed class LogitComparison
{
    private readonly Tensor _clean;
    private readonly IReadOnlyList<int[]> _sequences;
    private readonly bool[] _keep;
    private readonly int _seq, _vocab;
    private readonly Compute _compute;
    private readonly double[] _logZ;

    public LogitComparison(Tensor cleanLogits, IReadOnlyList<int[]> sequences, bool[] keep, Compute compute)
    {
        _seq = sequences.Max(s => s.Length);
        _vocab = cleanLogits.Dim(-1);
        cleanLogits.EnsureShape("clean logits", sequences.Count, _seq, _vocab);
        if (keep.Length != sequences.Count * _seq) throw new ArgumentException($"keep mask has {keep.Length} entries for {sequences.Count * _seq} positions");
        _clean = cleanLogits.Reshape(-1, _vocab);
        _sequences = sequences;
        _keep = keep;
        _compute = compute;
        _logZ = new double[_clean.Rows];
        var ce = new double[_clean.Rows];
        PerRow((r, buf) =>
        {
            if (!_keep[r]) return;
            _logZ[r] = LogSumExp(_clean.Row(r), buf);
            ce[r] = Target(r) is int tok ? _logZ[r] - _clean[r, tok] : 0;
        });
        CleanCrossEntropy = new RunningMean { Sum = Sum(ce), Count = CrossEntropyRows() };
    }

    /// <summary>The clean run's summed next-token cross-entropy and prediction count.</summary>
    public RunningMean CleanCrossEntropy { get; }

    /// <summary>Cross-entropy and KL(clean ‖ patched) sums over the counted positions of a patched run's logits.</summary>
    public (RunningMean CrossEntropy, RunningMean Kl) Compare(Tensor patchedLogits)
    {
        patchedLogits.EnsureShape("patched logits", _sequences.Count, _seq, _vocab);
        var logits = patchedLogits.Reshape(-1, _vocab);
        var ce = new double[logits.Rows];
        var kl = new double[logits.Rows];
        PerRow((r, buf) =>
        {
            if (!_keep[r]) return;
            var a = _clean.Row(r);
            var b = logits.Row(r);
            double logZ = LogSumExp(b, buf);
            ce[r] = Target(r) is int tok ? logZ - b[tok] : 0;
            kl[r] = Kl(a, _logZ[r], b, logZ, buf); // the clean log-partition is reused
        });
        long klRows = _keep.LongCount(k => k);
        return (new RunningMean { Sum = Sum(ce), Count = CrossEntropyRows() }, new RunningMean { Sum = Sum(kl), Count = klRows });
    }

    /// <summary>The token row r predicts when its cross-entropy counts: kept, and not the last position of its sequence.</summary>
    private int? Target(int r)
    {
        int b = r / _seq, t = r % _seq;
        return _keep[r] && t + 1 < _sequences[b].Length ? _sequences[b][t + 1] : null;
    }

    private long CrossEntropyRows()
    {
        long n = 0;
        for (int r = 0; r < _keep.Length; r++) if (Target(r) is not null) n++;
        return n;
    }

    /// <summary>Runs body over the rows in parallel, each part with its own 2·vocab scratch.</summary>
    private void PerRow(Action<int, float[]> body)
    {
        _compute.ForRange(_clean.Rows, 8, (r0, r1) =>
        {
            var buf = new float[2 * _vocab];
            for (int r = r0; r < r1; r++) body(r, buf);
        });
    }

    private static double Sum(double[] values)
    {
        double s = 0;
        foreach (double v in values) s += v;
        return s;
    }

    /// <summary>
    /// KL(p‖q) of the distributions p = softmax(<paramref name="a"/>), q = softmax(<paramref name="b"/>) given their
    /// log-partitions: Σ p (a − b) − log Z_a + log Z_b. <paramref name="buf"/> holds at least 2·a.Length floats.
    /// </summary>
    public static double Kl(ReadOnlySpan<float> a, double logZa, ReadOnlySpan<float> b, double logZb, float[] buf)
    {
        var p = buf.AsSpan(0, a.Length); var diff = buf.AsSpan(a.Length, a.Length);
        TensorPrimitives.Subtract(a, (float)logZa, p);
        TensorPrimitives.Exp(p, p);
        TensorPrimitives.Subtract(a, b, diff);
        return TensorPrimitives.Dot(p, diff) - logZa + logZb;
    }

    /// <summary>log Σ exp(row), max-subtracted; <paramref name="buf"/> holds at least row.Length floats.</summary>
    public static double LogSumExp(ReadOnlySpan<float> row, float[] buf)
    {
        float max = TensorPrimitives.Max(row);
        var e = buf.AsSpan(0, row.Length);
        TensorPrimitives.Subtract(row, max, e);
        TensorPrimitives.Exp(e, e);
        // Vector sums of 256-float blocks, added in float64: vector speed, float64 accuracy over a large vocabulary.
        double sum = 0;
        for (int i = 0; i < e.Length; i += 256) sum += TensorPrimitives.Sum(e.Slice(i, Math.Min(256, e.Length - i)));
        return max + Math.Log(sum);
    }
}
