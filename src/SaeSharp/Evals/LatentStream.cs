using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Evals;

/// <summary>
/// One SAE over one token batch: its input rows, the rows its output stands for (the input itself for an SAE, the
/// output hook's activations for a transcoder) and its forward (latent codes and output), all with one row per
/// position of the batch in <see cref="LatentBatch"/> order.
/// </summary>
public sealed record SaeActivations(HookedSae Sae, Tensor Input, Tensor Target, SaeForward Forward)
{
    /// <summary>The latent codes as sparse rows: the forward's own, or the non-zero entries of its dense features.</summary>
    public SparseCodes Codes(Compute compute) => Forward.Codes ?? SparseCodes.FromDense(Forward.Features!, compute);
}

/// <summary>
/// A batch of sequences run through the model (clean) and every SAE. Rows are positions in (sequence, position)
/// order over the batch right-padded to <see cref="SeqLen"/>: row = sequence·SeqLen + position.
/// </summary>
public sealed class LatentBatch
{
    public required IReadOnlyList<int[]> Sequences { get; init; }
    public required int SeqLen { get; init; }
    /// <summary>Per row: a real position (not padding) whose token is not excluded.</summary>
    public required bool[] Keep { get; init; }
    /// <summary>Clean logits <c>[batch, SeqLen, vocab]</c>, when asked for.</summary>
    public Tensor? Logits { get; init; }
    /// <summary>Clean activations at the SAEs' hooks, <c>[batch, SeqLen, ...]</c>.</summary>
    public required IReadOnlyDictionary<string, Tensor> Cache { get; init; }
    /// <summary>One entry per SAE of the stream, in its order.</summary>
    public required IReadOnlyList<SaeActivations> Saes { get; init; }

    public int Rows => Sequences.Count * SeqLen;
    public int Row(int sequence, int position) => sequence * SeqLen + position;
    public (int Sequence, int Position) PositionOf(int row) => (row / SeqLen, row % SeqLen);
    /// <summary>Number of rows <see cref="Keep"/> selects.</summary>
    public int KeptCount => Keep.Count(k => k);
}

/// <summary>
/// Runs a model over token batches with one or more SAEs attached and hands back, per batch, the latent codes of
/// every SAE at every position (see <see cref="LatentBatch"/>). The model runs once per batch, caching every hook
/// the SAEs read or stand for, and stops after the last block they need unless logits are asked for.
/// </summary>
public sealed class LatentStream
{
    private readonly HookedTransformer _model;
    private readonly IReadOnlyList<HookedSae> _saes;
    private readonly HashSet<int> _exclude;
    private readonly string[] _hooks;

    /// <param name="excludeTokens">Tokens whose positions <see cref="LatentBatch.Keep"/> leaves out (BOS/EOS/pad).</param>
    /// <param name="alsoCache">Further hooks to cache from the clean run (in <see cref="LatentBatch.Cache"/>).</param>
    public LatentStream(HookedTransformer model, IReadOnlyList<HookedSae> saes, IEnumerable<int>? excludeTokens = null, IEnumerable<string>? alsoCache = null)
    {
        if (saes.Count == 0) throw new ArgumentException("no SAEs to run", nameof(saes));
        _model = model;
        _saes = saes;
        _exclude = excludeTokens is null ? [] : [.. excludeTokens];
        _hooks = saes.SelectMany(s => new[] { s.Site.InputHook, s.Site.OutputHook }).Concat(alsoCache ?? []).Distinct().ToArray();
    }

    public HookedTransformer Model => _model;
    public IReadOnlyList<HookedSae> Saes => _saes;

    /// <summary>Whether a position holding <paramref name="token"/> is kept.</summary>
    public bool Keeps(int token) => !_exclude.Contains(token);

    /// <summary>Per row of a batch of <paramref name="sequences"/> (right-padded, row = sequence·maxLen + position): a real position whose token is kept.</summary>
    public bool[] KeepMask(IReadOnlyList<int[]> sequences)
    {
        int t = sequences.Max(s => s.Length);
        var keep = new bool[sequences.Count * t];
        for (int b = 0; b < sequences.Count; b++)
            for (int p = 0; p < sequences[b].Length; p++) keep[b * t + p] = Keeps(sequences[b][p]);
        return keep;
    }

    /// <summary>Runs one batch of sequences.</summary>
    public LatentBatch Run(IReadOnlyList<int[]> sequences, bool withLogits = false)
    {
        var clean = _model.RunBatch(sequences, _hooks, returnLogits: withLogits);
        var keep = KeepMask(sequences);
        var saes = _saes.Select(s =>
        {
            var input = s.Site.GatherInput(clean.Cache[s.Site.InputHook]);
            var target = s.Site.IsCrossHook ? s.Site.GatherOutput(clean.Cache[s.Site.OutputHook]) : input;
            return new SaeActivations(s, input, target, s.Sae.Forward(input, s.Sae.Config.IsTranscoder ? target : null, null));
        }).ToArray();
        return new LatentBatch { Sequences = sequences, SeqLen = sequences.Max(s => s.Length), Keep = keep, Logits = clean.Logits, Cache = clean.Cache, Saes = saes };
    }

    /// <summary>Runs <paramref name="sequences"/> in batches of <paramref name="batchSize"/>, lazily.</summary>
    public IEnumerable<LatentBatch> Stream(IEnumerable<int[]> sequences, int batchSize, bool withLogits = false)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch size must be at least 1, got {batchSize}");
        var batch = new List<int[]>(batchSize);
        foreach (var s in sequences)
        {
            batch.Add(s);
            if (batch.Count < batchSize) continue;
            yield return Run(batch.ToArray(), withLogits);
            batch.Clear();
        }
        if (batch.Count > 0) yield return Run(batch.ToArray(), withLogits);
    }
}
