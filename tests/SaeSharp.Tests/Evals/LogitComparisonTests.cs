using SaeSharp.Evals;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Evals;

/// <summary>Next-token cross-entropy and KL(clean ‖ patched) on a three-token vocabulary, worked out by hand.</summary>
public class LogitComparisonTests
{
    private static void Near(double expected, double actual, double tol = 1e-6) =>
        Assert.True(Math.Abs(expected - actual) <= tol, $"expected {expected}, got {actual}");

    // One sequence [0, 1, 2]. Clean logits: row 0 uniform → p(1) = 1/3; row 1 [0, 0, ln 2] → p(2) = 1/2; row 2 unused
    // by the CE. Patched: row 0 [0, ln 2, 0] → q = [1/4, 1/2, 1/4], rows 1 and 2 unchanged.
    private static readonly float Ln2 = MathF.Log(2);
    private static readonly int[][] Seq = [[0, 1, 2]];
    private static Tensor Clean() => Tensor.FromArray([0f, 0, 0, 0, 0, Ln2, 1, 2, 3], 1, 3, 3);
    private static Tensor Patched() => Tensor.FromArray([0f, Ln2, 0, 0, 0, Ln2, 1, 2, 3], 1, 3, 3);

    [Fact]
    public void CrossEntropyAndKlOfEveryPosition()
    {
        var c = new LogitComparison(Clean(), Seq, [true, true, true], Compute.Single);
        Assert.Equal(2, c.CleanCrossEntropy.Count);
        Near((Math.Log(3) + Math.Log(2)) / 2, c.CleanCrossEntropy.Mean);
        var (ce, kl) = c.Compare(Patched());
        Near((Math.Log(2) + Math.Log(2)) / 2, ce.Mean);       // row 0 now gives token 1 probability 1/2
        Assert.Equal(3, kl.Count);
        // KL at row 0 = Σ (1/3) ln((1/3)/q) = (1/3) ln((4/3)(2/3)(4/3)) = (1/3) ln(32/27); rows 1, 2 add 0.
        Near(Math.Log(32.0 / 27) / 3 / 3, kl.Mean);
        var (same, zero) = c.Compare(Clean());
        Near(c.CleanCrossEntropy.Mean, same.Mean, 0);
        Assert.Equal(0, zero.Sum);
    }

    [Fact]
    public void ExcludedPositionsNeitherPredictNorCountInTheKl()
    {
        // Row 0 excluded (as a BOS): its prediction of token 1 and its KL drop out; row 1 still predicts token 2.
        var c = new LogitComparison(Clean(), Seq, [false, true, true], Compute.Single);
        Assert.Equal(1, c.CleanCrossEntropy.Count);
        Near(Math.Log(2), c.CleanCrossEntropy.Mean);
        var (ce, kl) = c.Compare(Patched());
        Near(Math.Log(2), ce.Mean);
        Assert.Equal(2, kl.Count);
        Assert.Equal(0, kl.Sum);
    }

    [Fact]
    public void PaddingOfShorterSequencesIsIgnored()
    {
        // Two sequences, the second of length 1 right-padded to 3: it predicts nothing and its padding rows are not kept.
        var logits = new Tensor(2, 3, 3);
        Clean().Span.CopyTo(logits.Span);
        var seqs = new[] { new[] { 0, 1, 2 }, new[] { 2 } };
        var c = new LogitComparison(logits, seqs, [true, true, true, true, false, false], Compute.All);
        Assert.Equal(2, c.CleanCrossEntropy.Count);
        var patched = logits.Clone();
        patched.Row(1 * 3 + 1)[0] = 50; // a padding row: changing it changes nothing
        var (ce, kl) = c.Compare(patched);
        Near(c.CleanCrossEntropy.Mean, ce.Mean, 0);
        Assert.Equal(4, kl.Count);
        Assert.Equal(0, kl.Sum);
        Assert.Throws<ArgumentException>(() => c.Compare(new Tensor(2, 3, 4)));
    }
}
