namespace SaeSharp.Data;

/// <summary>Options mirroring SAELens concat_and_batch_sequences.</summary>
public sealed record BatchingOptions(
    int ContextSize,
    int? BeginBatchToken = null,
    int? BeginSequenceToken = null,
    int? SequenceSeparatorToken = null,
    bool DisableConcatSequences = false);

/// <summary>
/// Turns a stream of token-id sequences (documents) into fixed-length context windows with SAELens semantics:
/// sequences are concatenated (with optional begin-batch / begin-sequence / separator tokens) and the trailing
/// partial window is dropped; or, with DisableConcatSequences, each sequence yields at most one window.
/// </summary>
public static class SequenceBatcher
{
    public static IEnumerable<int[]> ConcatAndBatch(IEnumerable<int[]> sequences, BatchingOptions o)
    {
        if (o.ContextSize < 1) throw new ArgumentException($"context size must be >= 1, got {o.ContextSize}");
        // With a begin-batch token and context 1 every window would be that token alone and no input is consumed.
        if (o.ContextSize < 2 && o.BeginBatchToken is not null && !o.DisableConcatSequences)
            throw new ArgumentException("context size must be >= 2 when a begin-batch token is set");
        return o.DisableConcatSequences ? NoConcat(sequences, o) : Concat(sequences, o);
    }

    private static IEnumerable<int[]> NoConcat(IEnumerable<int[]> sequences, BatchingOptions o)
    {
        int c = o.ContextSize;
        // SAELens: the begin-batch token doubles as the begin-sequence token when only the former is set.
        int? bos = o.BeginSequenceToken ?? o.BeginBatchToken;
        foreach (var seq in sequences)
        {
            var s = seq;
            if (bos is int b && s.Length > 0 && s[0] != b && s.Length >= c - 1)
            {
                var t = new int[s.Length + 1];
                t[0] = b;
                s.CopyTo(t, 1);
                s = t;
            }
            if (s.Length >= c) yield return s[..c];
        }
    }

    private static IEnumerable<int[]> Concat(IEnumerable<int[]> sequences, BatchingOptions o)
    {
        int c = o.ContextSize;
        var batch = new List<int>(c);
        bool haveBatch = false;
        var prefix = new List<int>(3);
        foreach (var tokens in sequences)
        {
            int offset = 0;
            bool startOfSeq = true;
            while (tokens.Length - offset > 0)
            {
                prefix.Clear();
                int first = tokens[offset];
                if (startOfSeq && o.BeginSequenceToken is int bs && first != bs) { prefix.Insert(0, bs); first = bs; }
                int needed;
                if (!haveBatch)
                {
                    if (o.BeginBatchToken is int bb && first != bb) prefix.Insert(0, bb);
                    needed = Math.Max(c - prefix.Count, 0);
                    batch.Clear();
                    batch.AddRange(prefix.Take(c));
                    haveBatch = true;
                }
                else
                {
                    if (startOfSeq && o.SequenceSeparatorToken is int sep) prefix.Insert(0, sep);
                    needed = Math.Max(c - batch.Count - prefix.Count, 0);
                    batch.AddRange(prefix.Take(c - batch.Count));
                }
                int take = Math.Min(needed, tokens.Length - offset);
                for (int i = 0; i < take; i++) batch.Add(tokens[offset + i]);
                offset += needed;
                startOfSeq = false;
                if (batch.Count == c)
                {
                    yield return batch.ToArray();
                    haveBatch = false;
                    batch.Clear();
                }
            }
        }
    }
}
