using SaeSharp.Analysis;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Analysis;

public class FeatureMatchingTests
{
    /// <summary>Codes from dense rows [tokens, latents] (zeros left out).</summary>
    private static SparseCodes Codes(float[,] dense)
    {
        var t = new Tensor(dense.GetLength(0), dense.GetLength(1));
        for (int r = 0; r < t.Rows; r++) for (int c = 0; c < t.Cols; c++) t[r, c] = dense[r, c];
        return SparseCodes.FromDense(t, Compute.All);
    }

    /// <summary>The same codes without any entry of the given latents (they become dead).</summary>
    private static SparseCodes Without(SparseCodes codes, params int[] latents)
    {
        var dense = codes.ToDense();
        for (int r = 0; r < dense.Rows; r++) foreach (int l in latents) dense[r, l] = 0;
        return SparseCodes.FromDense(dense, Compute.All);
    }

    [Fact]
    public void DistanceIsOneMinusTheCosineOfActivationColumns()
    {
        // Reference latent 0 = (1, 2, 0), latent 1 = (0, 0, 3); other latent 0 = (0, 1, 1), latent 1 = (2, 4, 0).
        var reference = Codes(new float[,] { { 1, 0 }, { 2, 0 }, { 0, 3 } });
        var other = Codes(new float[,] { { 0, 2 }, { 1, 4 }, { 1, 0 } });
        var m = FeatureMatching.ByActivations(reference, other, Compute.Single);
        // cos(r0, o1) = 1, cos(r1, o0) = 3/(3·√2); the other pairing scores cos(r0, o0) = 2/(√5·√2) and cos(r1, o1) = 0.
        Assert.Equal([1, 0], m.Partner);
        Assert.Equal(0, m.Distance[0], 6);
        Assert.Equal(1 - 1 / Math.Sqrt(2), m.Distance[1], 6);
        Assert.DoesNotContain(true, m.DeadReference);
    }

    [Fact]
    public void AKnownPermutationWithNoiseIsMatchedBackExactly()
    {
        var pair = SyntheticCodePair.Create(300, 300, 6000, sharedFraction: 1, seed: 3, pMin: 0.01, pMax: 0.05, dropout: 0.1, noise: 0.3, compute: Compute.All);
        Assert.DoesNotContain(-1, pair.Planted);
        var m = FeatureMatching.ByActivations(pair.Reference, pair.Other, new Compute(2),
            new AssignmentOptions { CandidatesPerRow = 2, AddedPerRound = 2, BlockEntries = 300 * 37 });
        Assert.Equal(pair.Planted, m.Partner);
        Assert.All(m.Distance, d => Assert.InRange(d, 0, 0.3));
    }

    [Fact]
    public void DeadLatentsAreReportedAndLeftOutOfTheAssignment()
    {
        var pair = SyntheticCodePair.Create(200, 200, 5000, sharedFraction: 1, seed: 4, pMin: 0.01, pMax: 0.05, compute: Compute.All);
        int lostPartner = Array.IndexOf(pair.Planted, 5);
        var reference = Without(pair.Reference, 3, 17);
        var other = Without(pair.Other, 5);
        var m = FeatureMatching.ByActivations(reference, other, Compute.Single);
        Assert.Equal([3, 17], Enumerable.Range(0, 200).Where(i => m.DeadReference[i]));
        Assert.Equal([5], Enumerable.Range(0, 200).Where(j => m.DeadOther[j]));
        foreach (int i in new[] { 3, 17 })
        {
            Assert.Equal(-1, m.Partner[i]);
            Assert.True(double.IsNaN(m.Distance[i]));
        }
        Assert.DoesNotContain(5, m.Partner);
        // Two dead reference latents free two other latents; the reference latent whose partner died takes one, at a poor distance.
        for (int i = 0; i < 200; i++)
            if (i is not (3 or 17) && i != lostPartner) Assert.Equal(pair.Planted[i], m.Partner[i]);
        Assert.True(m.Distance[lostPartner] > 0.5);
        Assert.Equal(198, m.Partner.Count(p => p >= 0));
    }

    /// <summary>Against the dense route: every cosine computed densely, the assignment solved on the whole matrix of live latents.</summary>
    [Theory]
    [InlineData(120, 90, 0.5)]
    [InlineData(80, 140, 0.3)]
    public void MatchesTheDenseOptimumOnRectangularPairs(int nRef, int nOther, double shared)
    {
        var pair = SyntheticCodePair.Create(nRef, nOther, 3000, shared, seed: (ulong)nRef, pMin: 0.01, pMax: 0.08, compute: Compute.All);
        var m = FeatureMatching.ByActivations(pair.Reference, pair.Other, Compute.Single, new AssignmentOptions { CandidatesPerRow = 1, AddedPerRound = 1 });
        var a = pair.Reference.ToDense();
        var b = pair.Other.ToDense();
        var liveA = Enumerable.Range(0, nRef).Where(i => !m.DeadReference[i]).ToArray();
        var liveB = Enumerable.Range(0, nOther).Where(j => !m.DeadOther[j]).ToArray();
        double Cos(int i, int j)
        {
            double dot = 0, na = 0, nb = 0;
            for (int t = 0; t < a.Rows; t++) { dot += a[t, i] * b[t, j]; na += a[t, i] * a[t, i]; nb += b[t, j] * b[t, j]; }
            return dot / Math.Sqrt(na * nb);
        }
        var cost = new double[liveA.Length * liveB.Length];
        for (int x = 0; x < liveA.Length; x++) for (int y = 0; y < liveB.Length; y++) cost[x * liveB.Length + y] = 1 - Cos(liveA[x], liveB[y]);
        var (rows, cols) = LinearAssignment.Solve(cost, liveA.Length, liveB.Length, Compute.All);
        double dense = rows.Select((r, k) => cost[r * liveB.Length + cols[k]]).Sum();
        double sparse = liveA.Where(i => m.Partner[i] >= 0).Sum(i => m.Distance[i]);
        Assert.Equal(dense, sparse, 6);
        Assert.Equal(Math.Min(liveA.Length, liveB.Length), m.Partner.Count(p => p >= 0));
        Assert.Equal(m.Partner.Count(p => p >= 0), m.Partner.Where(p => p >= 0).Distinct().Count());
        foreach (int i in liveA.Where(i => m.Partner[i] >= 0)) Assert.Equal(1 - Cos(i, m.Partner[i]), m.Distance[i], 6);
        foreach (int i in liveA.Where(i => m.Partner[i] < 0)) Assert.Equal(1, m.Distance[i]);
    }

    [Fact]
    public void DecodersArePairedByCosineAndMeanMaxCosineIsOneForAPermutation()
    {
        var rng = new Rng(8);
        var reference = new Tensor(50, 16);
        rng.FillNormal(reference.Span);
        var perm = rng.Permutation(50);
        var other = new Tensor(50, 16);
        for (int i = 0; i < 50; i++)
        {
            reference.Row(i).CopyTo(other.Row(perm[i]));
            for (int d = 0; d < 16; d++) other[perm[i], d] *= 2; // the scale does not matter
        }
        var m = FeatureMatching.ByDecoders(reference, other, Compute.Single);
        Assert.Equal(perm, m.Partner);
        Assert.All(m.Distance, d => Assert.Equal(0, d, 5));
        Assert.Equal(1, FeatureMatching.MeanMaxCosine(reference, other, Compute.Single), 5);
        Assert.All(FeatureMatching.PairDecoderCosines(reference, other, m.Partner), c => Assert.Equal(1, c, 5));
        // Against a random decoder the best cosines are well below 1, and a missing partner has none.
        var random = new Tensor(50, 16);
        rng.FillNormal(random.Span);
        Assert.InRange(FeatureMatching.MeanMaxCosine(reference, random, Compute.Single), 0.2, 0.9);
        Assert.True(double.IsNaN(FeatureMatching.PairDecoderCosines(reference, other, [-1, .. m.Partner[1..]])[0]));
        Assert.Throws<ArgumentException>(() => FeatureMatching.ByDecoders(reference, new Tensor(50, 8), compute: Compute.All));
    }

    [Fact]
    public void DropSmallRemovesEntriesAtOrBelowTheThreshold()
    {
        var codes = Codes(new float[,] { { 1e-7f, 0.5f, -2e-6f }, { 1e-6f, 0, 3 } });
        var kept = FeatureMatching.DropSmall(codes, 1e-6);
        var dense = kept.ToDense();
        Assert.Equal([0, 0.5f, -2e-6f, 0, 0, 3], dense.ToArray());
        Assert.Equal(3, kept.Count);
        Assert.Equal(5, FeatureMatching.DropSmall(codes, 0).Count); // only exact zeros go
        Assert.Throws<ArgumentException>(() => FeatureMatching.DropSmall(codes, double.NaN));
        Assert.Throws<ArgumentException>(() => FeatureMatching.ByActivations(codes, Codes(new float[,] { { 1 } }), compute: Compute.All));
    }
}
