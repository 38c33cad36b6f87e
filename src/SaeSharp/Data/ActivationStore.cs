using System.Globalization;
using System.Text.RegularExpressions;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Data;

/// <summary>
/// Streams model activations at one hook: context windows are run through the model in batches of
/// <c>storeBatchSizePrompts</c> (stopping after the hook's block), special-token positions are optionally dropped,
/// rows go through a <see cref="MixingBuffer"/>, and the next model batch is computed on a worker task while the
/// caller consumes the current one. Rows are multiplied by <see cref="NormScale"/> on the way out.
/// </summary>
public sealed partial class ActivationStore : IActivationSource
{
    private readonly HookedTransformer _model;
    private readonly string _hook;
    private readonly IEnumerator<int[]> _contexts;
    private readonly int _promptsPerBatch;
    private readonly HashSet<int> _exclude;
    private readonly HookSelection? _select;
    private readonly MixingBuffer _buffer;
    private Task<Tensor?>? _pending;
    private bool _started;

    public ActivationStore(HookedTransformer model, string hook, IEnumerable<int[]> contexts, int contextSize,
        int storeBatchSizePrompts, int nBatchesInBuffer, ulong seed, IEnumerable<int>? excludeTokens = null, double mixFraction = 0.5,
        HookSelection? select = null)
    {
        foreach (var h in Hooks(hook)) if (!model.HookNames.Contains(h)) throw new ArgumentException($"unknown hook '{h}'");
        if (storeBatchSizePrompts < 1) throw new ArgumentException($"store batch size must be >= 1 prompt, got {storeBatchSizePrompts}");
        _model = model;
        _hook = hook;
        _contexts = contexts.GetEnumerator();
        _promptsPerBatch = storeBatchSizePrompts;
        _exclude = excludeTokens is null ? new HashSet<int>() : new HashSet<int>(excludeTokens);
        _select = select;
        Dim = Width(model, hook, select);
        _buffer = new MixingBuffer(Dim, MixingBuffer.CapacityFor(nBatchesInBuffer, storeBatchSizePrompts, contextSize), Produce, seed, mixFraction);
    }

    [GeneratedRegex(@"^blocks\.(\d+)\.")]
    private static partial Regex LayerRegex();

    public int Dim { get; }
    public float NormScale { get; set; } = 1f;

    /// <summary>Special tokens of a model config (BOS/EOS) plus an optional pad id: positions to exclude.</summary>
    public static IEnumerable<int> SpecialTokens(TransformerConfig c, int? pad = null)
    {
        if (c.BosTokenId is int b) yield return b;
        if (c.EosTokenId is int e) yield return e;
        if (pad is int p) yield return p;
    }


    /// <summary>Runs the model over the next batch of windows; returns the kept rows, or null at the end.</summary>
    internal Tensor? RunNextModelBatch()
    {
        var batch = new List<int[]>(_promptsPerBatch);
        while (batch.Count < _promptsPerBatch && _contexts.MoveNext()) batch.Add(_contexts.Current);
        if (batch.Count == 0) return null;
        return Extract(_model, _hook, batch, _exclude, _select).Rows;
    }

    /// <summary>The hooks of a hook spec: one name, or several separated by commas (their activations concatenated).</summary>
    public static string[] Hooks(string spec) => spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// Row width at <paramref name="hook"/>: the product of the non-position dims, or one head's width; for several
    /// comma-separated hooks, the sum of their widths.
    /// </summary>
    public static int Width(HookedTransformer model, string hook, HookSelection? select = null)
    {
        var hooks = Hooks(hook);
        var cache = model.RunWithCache(new[] { 0 }, hooks, returnLogits: false).Cache;
        int total = 0;
        foreach (var name in hooks)
        {
            var t = cache[name];
            int width = t.Length / t.Dim(0);
            if (select?.HeadIndex is int h)
            {
                if (t.Rank != 3) throw new ArgumentException($"hook_head_index: hook '{name}' has no head dimension (shape [{t.ShapeString}])");
                if (h < 0 || h >= t.Dim(1)) throw new ArgumentException($"hook_head_index: {h} is out of range for {t.Dim(1)} heads at '{name}'");
                width = t.Dim(2);
            }
            total += width;
        }
        return total;
    }

    /// <summary>
    /// Activations [n, width] at <paramref name="hook"/> (several comma-separated hooks: concatenated in that order)
    /// for every position of <paramref name="batch"/> whose token is not in <paramref name="exclude"/> and that the
    /// selection keeps, in (sequence, position) order, with the token id of each row. The model runs once, up to the
    /// last hook's block.
    /// </summary>
    public static (Tensor Rows, int[] Tokens) Extract(HookedTransformer model, string hook, IReadOnlyList<int[]> batch,
        IReadOnlySet<int>? exclude = null, HookSelection? select = null)
    {
        var hooks = Hooks(hook);
        int? stop = 0;
        foreach (var name in hooks)
        {
            var m = LayerRegex().Match(name);
            stop = m.Success && stop is int s0 ? Math.Max(s0, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) + 1) : null;
        }
        var outp = model.RunBatch(batch, hooks, stop, returnLogits: false);
        int t = batch.Max(s => s.Length);
        // Each hook's slice of a position: its stride in the cache, the offset and width kept (one head with a head index).
        var parts = hooks.Select(name =>
        {
            var acts = outp.Cache[name];
            int stride = acts.Length / (batch.Count * t), dim = stride, offset = 0;
            if (select?.HeadIndex is int h)
            {
                dim = acts.Dim(acts.Rank - 1);
                offset = h * dim;
                if (acts.Rank < 3 || offset + dim > stride) throw new ArgumentException($"hook_head_index {h} does not fit hook '{name}' of shape [{acts.ShapeString}]");
            }
            return (Data: acts, Stride: stride, Offset: offset, Dim: dim);
        }).ToArray();
        bool Keep(int[] s, int p) => (exclude is null || !exclude.Contains(s[p])) && (select is null || select.Contains(p, s.Length));
        int kept = 0;
        foreach (var s in batch) for (int p = 0; p < s.Length; p++) if (Keep(s, p)) kept++;
        var rows = new Tensor(kept, parts.Sum(x => x.Dim));
        var toks = new int[kept];
        int r = 0;
        for (int b = 0; b < batch.Count; b++)
            for (int p = 0; p < batch[b].Length; p++)
            {
                if (!Keep(batch[b], p)) continue;
                toks[r] = batch[b][p];
                var row = rows.Row(r++);
                int at = 0;
                foreach (var x in parts)
                {
                    x.Data.Span.Slice((b * t + p) * x.Stride + x.Offset, x.Dim).CopyTo(row.Slice(at, x.Dim));
                    at += x.Dim;
                }
            }
        return (rows, toks);
    }

    private Tensor? Produce()
    {
        // Keep one model batch in flight on a worker so the model runs while the trainer consumes rows.
        if (!_started) { _started = true; _pending = Task.Run(RunNextModelBatch); }
        if (_pending is null) return null;
        var current = _pending.GetAwaiter().GetResult();
        _pending = current is null ? null : Task.Run(RunNextModelBatch);
        return current;
    }

    public bool Next(Tensor batch)
    {
        if (!_buffer.Next(batch)) return false;
        if (NormScale != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(batch.Span, NormScale, batch.Span);
        return true;
    }

    public IReadOnlyDictionary<string, string> Position => _buffer.Position;
    public void Restore(IReadOnlyDictionary<string, string> position) => _buffer.Restore(position);

    /// <summary>SAELens norm scaling factor: √d / mean row L2 norm over <paramref name="nBatches"/> batches (consumes them).</summary>
    public static double EstimateNormScalingFactor(IActivationSource source, int nBatches, int batchSize)
    {
        var t = new Tensor(batchSize, source.Dim);
        double sum = 0;
        long n = 0;
        for (int i = 0; i < nBatches && source.Next(t); i++)
            for (int r = 0; r < batchSize; r++) { sum += System.Numerics.Tensors.TensorPrimitives.Norm(t.Row(r)); n++; }
        if (n == 0) throw new InvalidOperationException("activation source produced no rows for the norm estimate");
        double mean = sum / n;
        if (!(mean > 0)) throw new InvalidDataException("mean activation norm is zero; cannot scale");
        return Math.Sqrt(source.Dim) / mean;
    }
}

/// <summary>
/// Which part of a hook's activations to keep (SAELens seqpos_slice and hook_head_index): positions in
/// [SeqPosStart, SeqPosEnd) with Python slice semantics (negative counts from the end, null is open), one head.
/// </summary>
public sealed record HookSelection(int? SeqPosStart = null, int? SeqPosEnd = null, int? HeadIndex = null)
{
    public bool Contains(int position, int length)
    {
        int Resolve(int? v, int open) => v is not int i ? open : Math.Clamp(i < 0 ? length + i : i, 0, length);
        return position >= Resolve(SeqPosStart, 0) && position < Resolve(SeqPosEnd, length);
    }
}
