using SaeSharp.Tensors;

namespace SaeSharp.Models;

/// <summary>
/// Hooks that edit or replace activations during one forward pass (steering, splicing an SAE in), keyed by
/// TransformerLens hook name. A hook receives the activation as a view (no batch axis for a single sequence,
/// <c>[batch, pos, ...]</c> for a batch) and may change it in place or return another tensor of the same shape,
/// which is copied into the stream. Hooks on one name run in the order added; cached values are taken after them.
/// </summary>
public sealed class HookSet
{
    private readonly Dictionary<string, List<Func<Tensor, Tensor>>> _hooks = new(StringComparer.Ordinal);

    public IEnumerable<string> Names => _hooks.Keys;

    /// <summary>Replaces the activation at <paramref name="name"/> by <paramref name="replace"/>'s result (same shape).</summary>
    public HookSet Replace(string name, Func<Tensor, Tensor> replace)
    {
        if (!_hooks.TryGetValue(name, out var list)) _hooks[name] = list = new();
        list.Add(replace);
        return this;
    }

    /// <summary>Edits the activation at <paramref name="name"/> in place.</summary>
    public HookSet Edit(string name, Action<Tensor> edit) => Replace(name, t => { edit(t); return t; });

    internal bool TryGet(string name, out List<Func<Tensor, Tensor>> hooks) => _hooks.TryGetValue(name, out hooks!);
}

/// <summary>Result of a forward pass: logits (when asked for) and the cached activations by hook name.</summary>
public sealed record ModelOutput(Tensor? Logits, IReadOnlyDictionary<string, Tensor> Cache);

/// <summary>
/// Result of a batched forward over right-padded sequences: logits <c>[batch, maxLen, vocab]</c>, cached activations
/// <c>[batch, maxLen, ...]</c> (<c>[batch, head, q, k]</c> for patterns). Positions at or past a sequence's length hold
/// values of no meaning.
/// </summary>
public sealed record BatchOutput(Tensor? Logits, IReadOnlyDictionary<string, Tensor> Cache, int[] Lengths);

/// <summary>
/// The residual stream entering block <paramref name="Layer"/> of a batched run, <c>[batch, maxLen, d_model]</c> (a
/// run's <c>blocks.{Layer}.hook_resid_pre</c>, or the last block's hook_resid_post for Layer = NLayers): a run given
/// it starts there, skipping the embeddings and the blocks before (TransformerLens start_at_layer).
/// </summary>
public sealed record ResidualStart(int Layer, Tensor Residual);

/// <summary>
/// Keys and values (after rotary) of earlier positions, per layer, for incremental decoding of one sequence.
/// </summary>
public sealed class KvCache
{
    internal Tensor[] Keys { get; }
    internal Tensor[] Values { get; }
    public int Capacity { get; }
    /// <summary>Number of positions stored; the next token's position.</summary>
    public int Length { get; internal set; }

    public KvCache(TransformerConfig config, int capacity)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), "KV cache capacity must be positive");
        if (capacity > config.MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache capacity {capacity} exceeds the model's {config.MaxPositions} positions");
        Capacity = capacity;
        int w = config.NKvHeads * config.DHead;
        Keys = Enumerable.Range(0, config.NLayers).Select(_ => Tensor.Uninitialized(capacity, w)).ToArray();
        Values = Enumerable.Range(0, config.NLayers).Select(_ => Tensor.Uninitialized(capacity, w)).ToArray();
    }

    /// <summary>Forgets every position (the buffers are reused).</summary>
    public void Clear() => Length = 0;
}
