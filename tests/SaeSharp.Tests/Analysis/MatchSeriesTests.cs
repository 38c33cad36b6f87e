using SaeSharp.Analysis;

namespace SaeSharp.Tests.Analysis;

public class MatchSeriesTests
{
    /// <summary>
    /// Five reference latents through three checkpoints and the reference (last column), distances by hand:
    /// latent 0 matched throughout, 1 appears at checkpoint 1, 2 at checkpoint 2, 3 is matched at 1 but not at 2,
    /// 4 is dead in the reference.
    /// </summary>
    private static MatchSeries HandMade()
    {
        double nan = double.NaN;
        double[][] byCheckpoint =
        [
            [0.1, 0.9, 0.8, 0.95, nan],
            [0.2, 0.3, 0.6, 0.2, nan],
            [0.05, 0.1, 0.4, 0.7, nan],
        ];
        var dead = new[] { false, false, false, false, true };
        var matches = byCheckpoint.Select(d => (FeatureMatch?)new FeatureMatch(
            d.Select((x, i) => dead[i] ? -1 : (i + 1) % 5).ToArray(), d, dead, [false, false, true, false, false], 1, 5, 10)).ToList();
        matches.Add(null);
        return new MatchSeries(["step0", "step8", "step32", "final"], 3, matches);
    }

    [Fact]
    public void AppearingFeaturesAreUnmatchedBeforeAndMatchedFromThenOn()
    {
        var s = HandMade();
        Assert.Equal([0], s.Appearing(0, 0.5));
        Assert.Equal([1], s.Appearing(1, 0.5)); // 3 is matched at step8 but not at step32: it appears nowhere
        Assert.Equal([2], s.Appearing(2, 0.5));
        Assert.Empty(s.Appearing(3, 0.5));
        Assert.Equal([0, 1, 2], s.Appearing(0, 0.95));
        Assert.Equal([3], s.Appearing(1, 0.95)); // 0.95 is not below 0.95
        Assert.Empty(s.Appearing(0, 0.0)); // nothing is below 0, not even the reference's 0
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Appearing(4, 0.5));
    }

    [Fact]
    public void CountsFractionsAndOrderFollowTheDistances()
    {
        var s = HandMade();
        Assert.Equal(new MatchCounts(1, 3, 1, 1), s.Counts(0, 0.5));
        Assert.Equal(new MatchCounts(3, 1, 1, 1), s.Counts(1, 0.5));
        Assert.Equal(new MatchCounts(4, 0, 1, 1), s.Counts(3, 0.5));
        Assert.Equal(0.6, s.FractionMatched(1, 0.5), 12);
        Assert.Equal(0.2, s.FractionMatched(0, 0.5), 12);
        Assert.True(double.IsNaN(s.Distance(4, 3)));
        Assert.Equal(0, s.Distance(2, 3));
        Assert.Equal(2, s.Partner(2, 3));
        Assert.Equal(3, s.Partner(2, 0));
        Assert.Equal(-1, s.Partner(4, 3));
        // Totals: 0.35, 1.3, 1.8, 1.85, dead last.
        Assert.Equal([0, 1, 2, 3, 4], s.ByTotalDistance());
        Assert.Throws<ArgumentException>(() => new MatchSeries(["a", "b"], 0, [null, null]));
    }
}
