namespace SaeSharp.Analysis;

/// <summary>Per checkpoint, at one distance threshold: reference latents matched (distance below it), live but unmatched, and dead.</summary>
public sealed record MatchCounts(int Matched, int Unmatched, int DeadReference, int DeadOther);

/// <summary>
/// A reference SAE's latents matched at every checkpoint of a series (the notebook's distances matrix): column c holds,
/// per reference latent, the distance to its partner at checkpoint c (<see cref="FeatureMatch.Distance"/>; 0 at the
/// reference's own column, NaN for latents dead in the reference). Checkpoints are in training order.
/// </summary>
public sealed class MatchSeries
{
    private readonly IReadOnlyList<FeatureMatch?> _matches;

    /// <param name="matches">One per checkpoint, null at the reference's own column.</param>
    /// <param name="deadReference">Reference latents dead over the tokens (those of any match when not given).</param>
    public MatchSeries(IReadOnlyList<string> checkpoints, int referenceColumn, IReadOnlyList<FeatureMatch?> matches, bool[]? deadReference = null)
    {
        if (checkpoints.Count != matches.Count) throw new ArgumentException($"{checkpoints.Count} checkpoint names for {matches.Count} matches");
        if (referenceColumn < 0 || referenceColumn >= matches.Count || matches[referenceColumn] is not null)
            throw new ArgumentException($"reference column {referenceColumn}: expected the index of the one checkpoint without a match");
        var first = matches.FirstOrDefault(m => m is not null);
        int latents = first?.ReferenceLatents ?? deadReference?.Length ?? throw new ArgumentException("a series with only the reference needs deadReference");
        for (int c = 0; c < matches.Count; c++)
            if (c != referenceColumn && (matches[c] is null || matches[c]!.ReferenceLatents != latents))
                throw new ArgumentException($"checkpoint {checkpoints[c]}: expected a match of {latents} reference latents");
        Checkpoints = checkpoints;
        ReferenceColumn = referenceColumn;
        _matches = matches;
        DeadReference = deadReference ?? first!.DeadReference;
        Latents = latents;
    }

    public IReadOnlyList<string> Checkpoints { get; }
    public int ReferenceColumn { get; }
    public int Latents { get; }
    public bool[] DeadReference { get; }
    public FeatureMatch? Match(int column) => _matches[column];

    /// <summary>Distance of reference latent <paramref name="latent"/> to its partner at checkpoint <paramref name="column"/>.</summary>
    public double Distance(int latent, int column) =>
        DeadReference[latent] ? double.NaN : column == ReferenceColumn ? 0 : _matches[column]!.Distance[latent];

    /// <summary>The latent of checkpoint <paramref name="column"/> matched to reference latent <paramref name="latent"/> (itself at the reference; −1: none).</summary>
    public int Partner(int latent, int column) =>
        column == ReferenceColumn ? (DeadReference[latent] ? -1 : latent) : _matches[column]!.Partner[latent];

    /// <summary>Whether the latent counts as matched at a checkpoint: distance below the threshold (dead latents never are).</summary>
    public bool IsMatched(int latent, int column, double threshold) => Distance(latent, column) < threshold;

    public MatchCounts Counts(int column, double threshold)
    {
        int matched = 0, dead = 0;
        for (int i = 0; i < Latents; i++)
        {
            if (DeadReference[i]) dead++;
            else if (IsMatched(i, column, threshold)) matched++;
        }
        int deadOther = column == ReferenceColumn ? dead : _matches[column]!.DeadOther.Count(d => d);
        return new MatchCounts(matched, Latents - matched - dead, dead, deadOther);
    }

    /// <summary>Matched reference latents as a fraction of all the reference's latents (the notebook's fraction of matched features).</summary>
    public double FractionMatched(int column, double threshold) => (double)Counts(column, threshold).Matched / Latents;

    /// <summary>
    /// Latents that appear at checkpoint <paramref name="column"/>: unmatched (distance at or above the threshold, or
    /// dead) at every checkpoint before it, and matched at it and at every later one. Features that appear and vanish
    /// again are left out, as in the notebook. At column 0 these are the latents matched throughout.
    /// </summary>
    public int[] Appearing(int column, double threshold)
    {
        if (column < 0 || column >= Checkpoints.Count) throw new ArgumentOutOfRangeException(nameof(column), $"checkpoint index {column} of {Checkpoints.Count}");
        var result = new List<int>();
        for (int i = 0; i < Latents; i++)
        {
            bool ok = true;
            for (int c = 0; c < Checkpoints.Count && ok; c++) ok = IsMatched(i, c, threshold) == (c >= column);
            if (ok) result.Add(i);
        }
        return [.. result];
    }

    /// <summary>Reference latents in ascending order of their distances summed over the checkpoints (dead latents last).</summary>
    public int[] ByTotalDistance()
    {
        var total = new double[Latents];
        for (int i = 0; i < Latents; i++)
        {
            double s = 0;
            for (int c = 0; c < Checkpoints.Count; c++) s += Distance(i, c);
            total[i] = double.IsNaN(s) ? double.PositiveInfinity : s;
        }
        return Enumerable.Range(0, Latents).OrderBy(i => total[i]).ThenBy(i => i).ToArray();
    }
}
