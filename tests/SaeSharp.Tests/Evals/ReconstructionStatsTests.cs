using SaeSharp.Evals;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Evals;

/// <summary>SAELens's reconstruction_quality and shrinkage metrics on rows worked out by hand in the comments.</summary>
public class ReconstructionStatsTests
{
    private static void Near(double expected, double actual, double tol = 1e-9) =>
        Assert.True(Math.Abs(expected - actual) <= tol * Math.Max(1, Math.Abs(expected)), $"expected {expected}, got {actual}");

    // x = [[2, 0], [0, 4]], x̂ = [[2, 1], [0, 3]]: mean [1, 2], squared deviations 5 and 5, residuals 1 and 1.
    private static readonly Tensor X = Tensor.FromArray([2f, 0, 0, 4], 2, 2);
    private static readonly Tensor XHat = Tensor.FromArray([2f, 1, 0, 3], 2, 2);

    [Fact]
    public void OneBatchMatchesTheHandComputedValues()
    {
        var s = new ReconstructionStats(2);
        s.Add(X, XHat);
        Assert.Equal(2, s.Count);
        Near(1 - 1.0 / 5, s.ExplainedVariance);               // E‖x − x̂‖² = 1 against Σ_d Var(x_d) = 5
        Near(1 - 1.0 / 5, s.ExplainedVarianceLegacy);         // both rows 1 − 1/5
        Near(1, s.Mse);                                       // per token: Σ_d (x − x̂)² = 1, not divided by d or the batch
        Near((4 / (2 * Math.Sqrt(5)) + 12.0 / 12) / 2, s.CosineSimilarity);
        Near((2 + 4) / 2.0, s.L2NormIn);
        Near((Math.Sqrt(5) + 3) / 2, s.L2NormOut);
        Near((Math.Sqrt(5) / 2 + 3.0 / 4) / 2, s.L2Ratio);
        Near((5 + 9) / 2.0 / ((4 + 12) / 2.0), s.RelativeReconstructionBias); // E‖x̂‖² / E⟨x, x̂⟩ = 7/8
        Near(s.ExplainedVariance, Reconstruction.ExplainedVariance(X, XHat));
    }

    [Fact]
    public void ExplainedVarianceIsAboutTheMeanOfAllBatchesAndMseDoesNotScaleWithTheBatch()
    {
        // A second batch [[4, 2], [2, 2]] reconstructed exactly. All four rows: mean [2, 2], squared deviations
        // 4, 8, 4, 0 (sum 16), residuals 1, 1, 0, 0: EV = 1 − 2/16. Legacy uses each batch's own mean: the second
        // batch's mean [3, 2] gives deviations 1 and 1 with zero residual, so its rows score 1.
        var second = Tensor.FromArray([4f, 2, 2, 2], 2, 2);
        var s = new ReconstructionStats(2);
        s.Add(X, XHat);
        s.Add(second, second.Clone());
        Near(1 - 2.0 / 16, s.ExplainedVariance);
        Near((0.8 + 0.8 + 1 + 1) / 4, s.ExplainedVarianceLegacy);
        Near(0.5, s.Mse);
        var all = Tensor.FromArray([2f, 0, 0, 4, 4, 2, 2, 2], 4, 2);
        var allHat = Tensor.FromArray([2f, 1, 0, 3, 4, 2, 2, 2], 4, 2);
        Near(Reconstruction.ExplainedVariance(all, allHat), s.ExplainedVariance);
    }

    [Fact]
    public void StreamingAgreesWithTheTwoPassBatchFormulaOnLargeOffsetData()
    {
        // Offset 1000 with unit spread: a one-pass E[x²] − E[x]² in float64 would lose digits here, the merge does not.
        var rng = new Rng(5);
        var x = new Tensor(300, 7);
        var y = new Tensor(300, 7);
        rng.FillNormal(x.Span);
        rng.FillNormal(y.Span, 0, 0.3f);
        for (int i = 0; i < x.Length; i++) { x[i] += 1000; y[i] += x[i]; }
        var s = new ReconstructionStats(7);
        foreach (int start in new[] { 0, 100, 250 }) s.Add(x.RowSlice(start, start == 0 ? 100 : start == 100 ? 150 : 50), y.RowSlice(start, start == 0 ? 100 : start == 100 ? 150 : 50));
        Near(Reconstruction.ExplainedVariance(x, y), s.ExplainedVariance, 1e-9);
        Assert.Equal(300, s.Count);
    }

    [Fact]
    public void KeepMaskLeavesRowsOut()
    {
        // Row 1 masked: only x = [2, 0] counts; its batch has no variance, so legacy divides by zero (as SAELens).
        var s = new ReconstructionStats(2);
        s.Add(Tensor.FromArray([2f, 0, 100, 100, 0, 4], 3, 2), Tensor.FromArray([2f, 1, 0, 0, 0, 3], 3, 2), [true, false, true]);
        Assert.Equal(2, s.Count);
        Near(0.8, s.ExplainedVariance);
        Near(1, s.Mse);
        Assert.Throws<ArgumentException>(() => s.Add(X, XHat, [true]));
    }

    [Fact]
    public void ZeroRowsCountCosineOneAgainstZeroAndZeroAgainstAnything()
    {
        var s = new ReconstructionStats(2);
        s.Add(Tensor.FromArray([0f, 0, 0, 0], 2, 2), Tensor.FromArray([0f, 0, 1, 0], 2, 2));
        Near(0.5, s.CosineSimilarity);
        Assert.Equal(double.NegativeInfinity, s.ExplainedVariance); // no variance and an error
    }
}
