using SaeSharp.Tensors;

namespace SaeSharp.Synthetic;

/// <summary>
/// Latent codes of two SAEs over the same tokens whose latents share features up to a known permutation: what a
/// feature matcher must recover. <see cref="Planted"/>[i] is the other SAE's latent that carries reference latent i's
/// feature (−1 where the reference's feature has no counterpart).
/// </summary>
public sealed record SyntheticCodePair(SparseCodes Reference, SparseCodes Other, int[] Planted)
{
    /// <summary>
    /// Draws <paramref name="tokens"/> rows of Zipf-distributed feature firings (<see cref="ActivationGenerator"/>,
    /// probabilities from <paramref name="pMax"/> down to <paramref name="pMin"/>, magnitudes ReLU(1 + 0.3·N(0, 1))). The reference's latents are features
    /// 0..referenceLatents−1. The other SAE's latents are a random permutation of <paramref name="sharedFraction"/> of
    /// them plus features of their own; a shared latent misses each firing with probability <paramref name="dropout"/>
    /// and its value is scaled by exp(<paramref name="noise"/>·N(0, 1)).
    /// </summary>
    public static SyntheticCodePair Create(int referenceLatents, int otherLatents, int tokens, double sharedFraction, ulong seed,
        Compute compute,
        double pMin = 0.002, double pMax = 0.05, double dropout = 0.1, double noise = 0.2)
    {
        if (referenceLatents < 1 || otherLatents < 1 || tokens < 0) throw new ArgumentException("latent counts must be positive and tokens non-negative");
        if (!(sharedFraction >= 0 && sharedFraction <= 1)) throw new ArgumentException($"shared fraction must be in [0, 1], got {sharedFraction}");
        var rng = new Rng(seed);
        int shared = (int)Math.Round(sharedFraction * Math.Min(referenceLatents, otherLatents));
        int features = referenceLatents + otherLatents - shared;
        // Feature f < referenceLatents is reference latent f; otherOf[f] is its latent in the other SAE (−1: none).
        var otherOf = new int[features];
        Array.Fill(otherOf, -1);
        var sharedRef = rng.Permutation(referenceLatents).Take(shared).ToArray();
        var slots = rng.Permutation(otherLatents);
        for (int s = 0; s < shared; s++) otherOf[sharedRef[s]] = slots[s];
        for (int f = referenceLatents; f < features; f++) otherOf[f] = slots[shared + f - referenceLatents];
        var probs = Profiles.Zipfian(features, 0.5, pMin, pMax);
        rng.Shuffle(probs.AsSpan()); // frequent and rare features spread over both SAEs
        var all = new ActivationGenerator(probs, stdMagnitudes: Profiles.Constant(features, 0.3)).SampleCodes(tokens, rng.Fork(), compute);

        var refCounts = new int[tokens];
        var otherEntries = new List<(int Latent, float Value)>[tokens];
        for (int r = 0; r < tokens; r++)
        {
            otherEntries[r] = [];
            for (int e = all.RowStart[r]; e < all.RowStart[r + 1]; e++)
            {
                int f = all.Index[e];
                if (f < referenceLatents) refCounts[r]++;
                if (otherOf[f] < 0) continue;
                if (f < referenceLatents && rng.NextDouble() < dropout) continue;
                float v = f < referenceLatents ? all.Value[e] * (float)Math.Exp(noise * rng.Normal()) : all.Value[e];
                otherEntries[r].Add((otherOf[f], v));
            }
        }
        var reference = SparseCodes.FromRowCounts(referenceLatents, refCounts);
        var other = SparseCodes.FromRowCounts(otherLatents, otherEntries.Select(l => l.Count).ToArray());
        for (int r = 0; r < tokens; r++)
        {
            int w = reference.RowStart[r];
            for (int e = all.RowStart[r]; e < all.RowStart[r + 1]; e++)
                if (all.Index[e] < referenceLatents) { reference.Index[w] = all.Index[e]; reference.Value[w++] = all.Value[e]; }
            w = other.RowStart[r];
            foreach (var (latent, value) in otherEntries[r]) { other.Index[w] = latent; other.Value[w++] = value; }
        }
        var planted = new int[referenceLatents];
        for (int i = 0; i < referenceLatents; i++) planted[i] = otherOf[i];
        return new SyntheticCodePair(reference, other, planted);
    }
}
