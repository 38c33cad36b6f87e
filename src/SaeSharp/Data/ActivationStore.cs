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
    private readonly MixingBuffer _buffer;
    private Task<Tensor?>? _pending;
    private bool _started;

    public ActivationStore(HookedTransformer model, string hook, IEnumerable<int[]> contexts, int contextSize,
        int storeBatchSizePrompts, int nBatchesInBuffer, ulong seed, IEnumerable<int>? excludeTokens = null, double mixFraction = 0.5)
    {
        if (!model.HookNames.Contains(hook)) throw new ArgumentException($"unknown hook '{hook}'");
        if (storeBatchSizePrompts < 1) throw new ArgumentException($"store batch size must be >= 1 prompt, got {storeBatchSizePrompts}");
        _model = model;
        _hook = hook;
        _contexts = contexts.GetEnumerator();
        _promptsPerBatch = storeBatchSizePrompts;
        _exclude = excludeTokens is null ? new HashSet<int>() : new HashSet<int>(excludeTokens);
        Dim = HookWidth(model, hook);
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

    private static int HookWidth(HookedTransformer model, string hook)
    {
        var o = model.RunWithCache(new[] { 0 }, new[] { hook }, returnLogits: false);
        var t = o.Cache[hook];
        return t.Length / t.Dim(0);
    }

    /// <summary>Runs the model over the next batch of windows; returns the kept rows, or null at the end.</summary>
    internal Tensor? RunNextModelBatch()
    {
        var batch = new List<int[]>(_promptsPerBatch);
        while (batch.Count < _promptsPerBatch && _contexts.MoveNext()) batch.Add(_contexts.Current);
        if (batch.Count == 0) return null;
        return Extract(_model, _hook, batch, _exclude).Rows;
    }

    /// <summary>Hook width (product of the non-position dims) of <paramref name="hook"/>.</summary>
    public static int Width(HookedTransformer model, string hook) => HookWidth(model, hook);

    /// <summary>
    /// Activations [n, width] at <paramref name="hook"/> for every position of <paramref name="batch"/> whose token
    /// is not in <paramref name="exclude"/>, in (sequence, position) order, with the token id of each row.
    /// </summary>
    public static (Tensor Rows, int[] Tokens) Extract(HookedTransformer model, string hook, IReadOnlyList<int[]> batch, IReadOnlySet<int>? exclude = null)
    {
        var m = LayerRegex().Match(hook);
        int? stop = m.Success ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) + 1 : null;
        var outp = model.RunBatch(batch, new[] { hook }, stop, returnLogits: false);
        var acts = outp.Cache[hook];
        int t = batch.Max(s => s.Length);
        int dim = acts.Length / (batch.Count * t);
        var src = acts.Span;
        int kept = 0;
        foreach (var s in batch) foreach (var tok in s) if (exclude is null || !exclude.Contains(tok)) kept++;
        var rows = new Tensor(kept, dim);
        var toks = new int[kept];
        int r = 0;
        for (int b = 0; b < batch.Count; b++)
            for (int p = 0; p < batch[b].Length; p++)
            {
                if (exclude is not null && exclude.Contains(batch[b][p])) continue;
                toks[r] = batch[b][p];
                src.Slice((b * t + p) * dim, dim).CopyTo(rows.Row(r++));
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
