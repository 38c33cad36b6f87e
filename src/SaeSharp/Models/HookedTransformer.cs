using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Models;

/// <summary>
/// A decoder-only transformer (Llama, GPT-2, GPT-NeoX) with TransformerLens hook points. Every matrix product goes
/// through <see cref="Gemm"/>; attention runs in parallel over (sequence, head).
/// </summary>
public sealed partial class HookedTransformer
{
    public TransformerConfig Config { get; }
    public ModelWeights Weights { get; }
    /// <summary>Threads used by GEMMs and the per-head attention loop.</summary>
    public Compute Compute { get; }

    private readonly LayerHookNames[] _layerNames;
    private readonly HashSet<string> _validNames;
    /// <summary>Every hook point of this model, in forward order.</summary>
    public IReadOnlyList<string> HookNames { get; }

    public HookedTransformer(TransformerConfig config, ModelWeights weights, Compute compute)
    {
        Config = config;
        Weights = weights;
        Compute = compute ?? throw new ArgumentNullException(nameof(compute));
        _layerNames = Enumerable.Range(0, config.NLayers).Select(l => new LayerHookNames(l)).ToArray();
        var names = new List<string> { "hook_embed" };
        if (config.LearnedPositions) names.Add("hook_pos_embed");
        foreach (var n in _layerNames)
        {
            names.AddRange([n.ResidPre, n.Ln1, n.Q, n.K, n.V]);
            if (config.Rope != RopeLayout.None) names.AddRange([n.RotQ, n.RotK]);
            names.AddRange([n.Pattern, n.Z, n.AttnOut]);
            if (!config.ParallelResidual) names.Add(n.ResidMid);
            names.AddRange([n.Ln2, n.MlpPre]);
            if (config.GatedMlp) names.Add(n.MlpPreLinear);
            names.AddRange([n.MlpPost, n.MlpOut, n.ResidPost]);
        }
        names.AddRange(["ln_final.hook_normalized", "ln_final.output"]);
        HookNames = names;
        _validNames = new HashSet<string>(names, StringComparer.Ordinal);
    }

    /// <summary>The block a hook point lies in: -1 for the embeddings, NLayers for ln_final.</summary>
    public int BlockOf(string hookName) => HookRun.LayerOf(hookName, Config.NLayers);

    /// <summary>Loads a Hugging Face folder or a llama2.c .bin checkpoint.</summary>
    public static HookedTransformer Load(string path, Compute compute)
    {
        var (cfg, w) = ModelLoader.Load(path);
        return new HookedTransformer(cfg, w, compute);
    }

    /// <summary>Logits [T, vocab] of one sequence.</summary>
    public Tensor Forward(int[] tokens, HookSet? hooks = null) =>
        RunWithCache(tokens, Array.Empty<string>(), null, hooks).Logits!;

    /// <summary>
    /// Runs one sequence, caching the activations named in <paramref name="names"/> (each <c>[T, ...]</c>, no batch axis).
    /// <paramref name="stopAtLayer"/> (as TransformerLens) runs only blocks [0, stopAtLayer); then no logits are produced.
    /// Without logits the pass also stops after the last block any cached name needs.
    /// </summary>
    public ModelOutput RunWithCache(int[] tokens, IReadOnlyCollection<string> names, int? stopAtLayer = null, HookSet? hooks = null, bool returnLogits = true)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Length == 0) throw new ArgumentException("token sequence is empty", nameof(tokens));
        var run = new HookRun(this, names, hooks, batched: false);
        int blocks = BlocksToRun(run, stopAtLayer, ref returnLogits);
        var logits = ForwardCore(tokens, 1, tokens.Length, 0, null, run, blocks, returnLogits);
        return new ModelOutput(logits?.Reshape(tokens.Length, Config.VocabSize), run.Cache);
    }

    /// <summary>
    /// Runs several sequences at once, right-padded to the longest (causal attention means no real position ever
    /// attends to padding, so every sequence's values equal its own unpadded forward).
    /// </summary>
    /// <param name="start">
    /// Resume from the residual stream entering block <see cref="ResidualStart.Layer"/> (TransformerLens start_at_layer):
    /// the embeddings and earlier blocks are skipped, so hooks and cached names must lie at or after that block.
    /// </param>
    public BatchOutput RunBatch(IReadOnlyList<int[]> sequences, IReadOnlyCollection<string>? names = null, int? stopAtLayer = null,
        HookSet? hooks = null, bool returnLogits = true, int padToken = 0, ResidualStart? start = null)
    {
        if (sequences.Count == 0) throw new ArgumentException("no sequences", nameof(sequences));
        int b = sequences.Count, t = sequences.Max(s => s.Length);
        if (sequences.Any(s => s.Length == 0)) throw new ArgumentException("a sequence in the batch is empty", nameof(sequences));
        var flat = new int[b * t];
        Array.Fill(flat, padToken);
        for (int i = 0; i < b; i++) sequences[i].CopyTo(flat, i * t);
        var run = new HookRun(this, names ?? Array.Empty<string>(), hooks, batched: true) { BatchSize = b };
        int blocks = BlocksToRun(run, stopAtLayer, ref returnLogits);
        if (start is not null)
        {
            if (start.Layer < 0 || start.Layer > Config.NLayers) throw new ArgumentOutOfRangeException(nameof(start), $"start layer {start.Layer} outside [0, {Config.NLayers}]");
            if (start.Layer > blocks) throw new ArgumentException($"start layer {start.Layer} lies beyond the {blocks} blocks this run needs");
            start.Residual.EnsureShape("start residual", b, t, Config.DModel);
            if (run.FirstNameBelow(start.Layer, Config.NLayers) is string early)
                throw new ArgumentException($"hook '{early}' lies before start layer {start.Layer}");
        }
        var logits = ForwardCore(flat, b, t, 0, null, run, blocks, returnLogits, start);
        return new BatchOutput(logits?.Reshape(b, t, Config.VocabSize), run.Cache, sequences.Select(s => s.Length).ToArray());
    }

    /// <summary>
    /// Feeds <paramref name="tokens"/> after the positions already in <paramref name="cache"/> and returns their logits
    /// [T, vocab]; the cache then holds them too.
    /// </summary>
    public Tensor ForwardIncremental(int[] tokens, KvCache cache, HookSet? hooks = null)
    {
        if (tokens.Length == 0) throw new ArgumentException("token sequence is empty", nameof(tokens));
        if (cache.Keys.Length != Config.NLayers || cache.Keys[0].Cols != Config.NKvHeads * Config.DHead)
            throw new ArgumentException("KV cache was made for a different model", nameof(cache));
        if (cache.Length + tokens.Length > cache.Capacity)
            throw new InvalidOperationException($"KV cache holds {cache.Length} of {cache.Capacity} positions; {tokens.Length} more do not fit");
        var run = new HookRun(this, Array.Empty<string>(), hooks, batched: false);
        var logits = ForwardCore(tokens, 1, tokens.Length, cache.Length, cache, run, Config.NLayers, true)!;
        cache.Length += tokens.Length;
        return logits.Reshape(tokens.Length, Config.VocabSize);
    }

    /// <summary>
    /// How many blocks to run. With <paramref name="stopAtLayer"/> set (TransformerLens semantics) the pass ends with
    /// the residual stream after block stopAtLayer-1: no final norm, no logits.
    /// </summary>
    private int BlocksToRun(HookRun run, int? stopAtLayer, ref bool returnLogits)
    {
        int blocks = Config.NLayers;
        int needed = run.MaxCachedLayer(Config.NLayers);
        if (stopAtLayer is int s)
        {
            if (s < 0 || s > Config.NLayers) throw new ArgumentOutOfRangeException(nameof(stopAtLayer), $"stopAtLayer {s} outside [0, {Config.NLayers}]");
            blocks = s;
            returnLogits = false;
            if (needed >= blocks)
                throw new ArgumentException($"hook '{run.FirstNameAtOrAbove(blocks, Config.NLayers)}' lies beyond stopAtLayer {blocks}");
        }
        if (!returnLogits) blocks = Math.Min(blocks, needed + 1);
        return blocks;
    }

    private Tensor? ForwardCore(int[] tokens, int batch, int seq, int startPos, KvCache? kv, HookRun run, int blocks, bool wantLogits,
        ResidualStart? start = null)
    {
        var c = Config;
        var w = Weights;
        int rows = batch * seq, d = c.DModel;
        // Every family stops at its context: past it learned positions do not exist and rotary models were never trained.
        if (startPos + seq > c.MaxPositions)
            throw new ArgumentException($"sequence of {startPos + seq} positions exceeds the model's {c.MaxPositions} positions (its context length)");
        run.Seq = seq;

        var x = Tensor.Uninitialized(rows, d);
        if (start is not null) start.Residual.Span.CopyTo(x.Span);
        else
        {
            for (int r = 0; r < rows; r++)
            {
                int id = tokens[r];
                if ((uint)id >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {id} at index {r} outside vocabulary [0, {c.VocabSize})");
                w.Embed.Row(id).CopyTo(x.Row(r));
            }
            run.At("hook_embed", x);
            if (w.PosEmbed is not null)
            {
                var pe = Tensor.Uninitialized(rows, d);
                for (int r = 0; r < rows; r++) w.PosEmbed.Row(startPos + r % seq).CopyTo(pe.Row(r));
                run.At("hook_pos_embed", pe);
                TensorPrimitives.Add(x.Span, pe.Span, x.Span);
            }
        }

        (float[] Cos, float[] Sin)? rope = c.Rope == RopeLayout.None ? null : RopeTables(startPos, seq);
        var s = new Scratch(c, rows, w.Blocks.Any(b => b.Qkv is not null));
        for (int l = start?.Layer ?? 0; l < blocks; l++)
        {
            var names = _layerNames[l];
            var bw = w.Blocks[l];
            run.At(names.ResidPre, x);
            Kernels.Normalize(x, s.Norm, c.Norm, c.NormEps, Compute);
            run.At(names.Ln1, s.Norm);
            Kernels.Affine(s.Norm, bw.Ln1, s.H);
            Attention(l, bw, s, batch, seq, startPos, kv, rope, run);
            run.At(names.AttnOut, s.AttnOut);
            if (c.ParallelResidual)
            {
                Kernels.Normalize(x, s.Norm, c.Norm, c.NormEps, Compute);
                run.At(names.Ln2, s.Norm);
                Kernels.Affine(s.Norm, bw.Ln2, s.H);
                Mlp(bw, s, names, run);
                TensorPrimitives.Add(x.Span, s.AttnOut.Span, x.Span);
                TensorPrimitives.Add(x.Span, s.MlpOut.Span, x.Span);
            }
            else
            {
                TensorPrimitives.Add(x.Span, s.AttnOut.Span, x.Span);
                run.At(names.ResidMid, x);
                Kernels.Normalize(x, s.Norm, c.Norm, c.NormEps, Compute);
                run.At(names.Ln2, s.Norm);
                Kernels.Affine(s.Norm, bw.Ln2, s.H);
                Mlp(bw, s, names, run);
                TensorPrimitives.Add(x.Span, s.MlpOut.Span, x.Span);
            }
            run.At(names.ResidPost, x);
        }
        if (blocks < c.NLayers || !(wantLogits || run.MaxCachedLayer(c.NLayers) == c.NLayers)) return null;

        Kernels.Normalize(x, s.Norm, c.Norm, c.NormEps, Compute);
        run.At("ln_final.hook_normalized", s.Norm);
        Kernels.Affine(s.Norm, w.LnFinal, s.H);
        run.At("ln_final.output", s.H);
        if (!wantLogits) return null;
        var logits = Tensor.Uninitialized(rows, c.VocabSize);
        Gemm.Multiply(Trans.No, Trans.Yes, rows, c.VocabSize, d, 1f, s.H.Span, d, w.Unembed.Span, d, 0f, logits.Span, c.VocabSize, Compute);
        if (w.UnembedBias is not null) Ops.AddRowVector(logits, w.UnembedBias.Span, compute: Compute);
        return logits;
    }

    /// <summary>Scratch buffers of one forward pass, reused across layers.</summary>
    private sealed class Scratch
    {
        public Tensor Norm, H, Q, K, V, Z, AttnOut, MlpPre, MlpUp, MlpPost, MlpOut;
        public Tensor? Fused;
        /// <summary>[batch, head, q, k] probabilities, allocated only when a pattern hook needs them.</summary>
        public float[]? Pattern;

        public Scratch(TransformerConfig c, int rows, bool fused)
        {
            int d = c.DModel, qw = c.NHeads * c.DHead, kw = c.NKvHeads * c.DHead;
            Norm = Tensor.Uninitialized(rows, d); H = Tensor.Uninitialized(rows, d);
            Q = Tensor.Uninitialized(rows, qw); K = Tensor.Uninitialized(rows, kw); V = Tensor.Uninitialized(rows, kw);
            Z = Tensor.Uninitialized(rows, qw); AttnOut = Tensor.Uninitialized(rows, d);
            MlpPre = Tensor.Uninitialized(rows, c.DMlp); MlpPost = Tensor.Uninitialized(rows, c.DMlp);
            MlpUp = c.GatedMlp ? Tensor.Uninitialized(rows, c.DMlp) : MlpPre;
            MlpOut = Tensor.Uninitialized(rows, d);
            Fused = fused ? Tensor.Uninitialized(rows, qw + 2 * kw) : null;
        }
    }

    /// <summary>cos/sin of pos·θ^(-2i/r) for positions [start, start+count), i in [0, r/2), computed in float64.</summary>
    private (float[] Cos, float[] Sin) RopeTables(int start, int count)
    {
        int half = Config.RotaryDim / 2;
        var cos = new float[count * half];
        var sin = new float[count * half];
        for (int i = 0; i < half; i++)
        {
            double invFreq = Math.Pow(Config.RopeTheta, -2.0 * i / Config.RotaryDim);
            for (int t = 0; t < count; t++)
            {
                double angle = (start + t) * invFreq;
                cos[t * half + i] = (float)Math.Cos(angle);
                sin[t * half + i] = (float)Math.Sin(angle);
            }
        }
        return (cos, sin);
    }

    /// <summary>Rotates the first RotaryDim dims of every head of <paramref name="x"/> [batch·seq, heads·dHead] in place.</summary>
    private void ApplyRope(Tensor x, int heads, int seq, (float[] Cos, float[] Sin) tab)
    {
        int dh = Config.DHead, half = Config.RotaryDim / 2;
        bool adjacent = Config.Rope == RopeLayout.AdjacentPair;
        for (int r = 0; r < x.Rows; r++)
        {
            var row = x.Row(r);
            int t = r % seq;
            var cos = tab.Cos.AsSpan(t * half, half);
            var sin = tab.Sin.AsSpan(t * half, half);
            for (int h = 0; h < heads; h++)
            {
                var v = row.Slice(h * dh, dh);
                for (int i = 0; i < half; i++)
                {
                    int i1 = adjacent ? 2 * i : i, i2 = adjacent ? 2 * i + 1 : i + half;
                    float a = v[i1], b = v[i2];
                    v[i1] = a * cos[i] - b * sin[i];
                    v[i2] = b * cos[i] + a * sin[i];
                }
            }
        }
    }

    /// <summary>Query rows per attention GEMM; smaller blocks skip more of the masked triangle.</summary>
    private const int QueryBlock = 64;

    private void Attention(int layer, BlockWeights bw, Scratch s, int batch, int seq, int startPos, KvCache? kv,
        (float[] Cos, float[] Sin)? rope, HookRun run)
    {
        var c = Config;
        var names = _layerNames[layer];
        int dh = c.DHead, nh = c.NHeads, qw = nh * dh, kw = c.NKvHeads * dh, rows = batch * seq;
        if (bw.Qkv is null)
        {
            bw.Q!.Apply(s.H, s.Q, Compute);
            bw.K!.Apply(s.H, s.K, Compute);
            bw.V!.Apply(s.H, s.V, Compute);
        }
        else
        {
            var f = s.Fused!;
            bw.Qkv.Apply(s.H, f, Compute);
            for (int r = 0; r < rows; r++)
            {
                var src = f.Row(r);
                Span<float> q = s.Q.Row(r), k = s.K.Row(r), v = s.V.Row(r);
                if (bw.QkvLayout == FusedQkv.Blocks)
                {
                    src[..qw].CopyTo(q);
                    src.Slice(qw, kw).CopyTo(k);
                    src.Slice(qw + kw, kw).CopyTo(v);
                }
                else
                {
                    for (int h = 0; h < nh; h++)
                    {
                        src.Slice(3 * h * dh, dh).CopyTo(q.Slice(h * dh, dh));
                        src.Slice(3 * h * dh + dh, dh).CopyTo(k.Slice(h * dh, dh));
                        src.Slice(3 * h * dh + 2 * dh, dh).CopyTo(v.Slice(h * dh, dh));
                    }
                }
            }
        }
        run.AtHeads(names.Q, s.Q, nh, dh);
        run.AtHeads(names.K, s.K, c.NKvHeads, dh);
        run.AtHeads(names.V, s.V, c.NKvHeads, dh);
        if (rope is { } tab)
        {
            ApplyRope(s.Q, nh, seq, tab);
            ApplyRope(s.K, c.NKvHeads, seq, tab);
            run.AtHeads(names.RotQ, s.Q, nh, dh);
            run.AtHeads(names.RotK, s.K, c.NKvHeads, dh);
        }

        Tensor keys = s.K, values = s.V;
        int tk = seq;
        if (kv is not null)
        {
            s.K.Span.CopyTo(kv.Keys[layer].Span[(startPos * kw)..]);
            s.V.Span.CopyTo(kv.Values[layer].Span[(startPos * kw)..]);
            keys = kv.Keys[layer];
            values = kv.Values[layer];
            tk = startPos + seq;
        }

        float scale = 1f / MathF.Sqrt(dh);
        int group = c.GroupSize, block = seq * tk;
        float[] qd = s.Q.Data, kd = keys.Data, vd = values.Data, zd = s.Z.Data;
        int qOff = s.Q.Offset, kOff = keys.Offset, vOff = values.Offset, zOff = s.Z.Offset;

        // Scores and causal softmax of query rows [t0, t1) of (sequence b, head h) into probs (row stride tk).
        // Causal: those rows see only keys [0, startPos + t1), so the GEMM skips the keys after them.
        void Scores(int b, int h, int t0, int t1, Span<float> probs)
        {
            int keysSeen = startPos + t1;
            Gemm.Multiply(Trans.No, Trans.Yes, t1 - t0, keysSeen, dh, scale,
                qd.AsSpan(qOff + (b * seq + t0) * qw + h * dh), qw,
                kd.AsSpan(kOff + b * tk * kw + h / group * dh), kw, 0f, probs, tk, Compute.Single);
            for (int t = t0; t < t1; t++)
            {
                var row = probs.Slice((t - t0) * tk, tk);
                int valid = startPos + t + 1;
                // Max-subtracted softmax (TensorPrimitives.SoftMax does not subtract the max and overflows above 88).
                var live = row[..valid];
                TensorPrimitives.Subtract(live, TensorPrimitives.Max(live), live);
                TensorPrimitives.Exp(live, live);
                TensorPrimitives.Multiply(live, 1f / TensorPrimitives.Sum(live), live);
                row[valid..].Clear();
            }
        }

        // z rows [t0, t1) of (b, h) = probs · V.
        void Mix(int b, int h, int t0, int t1, ReadOnlySpan<float> probs)
        {
            Gemm.Multiply(Trans.No, Trans.No, t1 - t0, dh, startPos + t1, 1f, probs, tk,
                vd.AsSpan(vOff + b * tk * kw + h / group * dh), kw, 0f,
                zd.AsSpan(zOff + (b * seq + t0) * qw + h * dh), qw, Compute.Single);
        }

        // Decoding one token touches a few thousand floats: thread hand-off would cost more than the work.
        var heads = (long)batch * nh * seq * tk * (dh + 8) < 1 << 16 ? Compute.Single : Compute;
        if (run.Wants(names.Pattern))
        {
            // The hook needs the whole [batch, head, q, k] pattern before z is formed.
            if (s.Pattern is null || s.Pattern.Length != batch * nh * block) s.Pattern = Tensor.Allocate(batch * nh * block, zeroed: false);
            var pattern = s.Pattern;
            heads.For(batch * nh, p =>
            {
                for (int t0 = 0; t0 < seq; t0 += QueryBlock)
                    Scores(p / nh, p % nh, t0, Math.Min(seq, t0 + QueryBlock), pattern.AsSpan(p * block + t0 * tk, (Math.Min(seq, t0 + QueryBlock) - t0) * tk));
            });
            run.AtPattern(names.Pattern, pattern, batch, nh, seq, tk);
            heads.For(batch * nh, p =>
            {
                for (int t0 = 0; t0 < seq; t0 += QueryBlock)
                    Mix(p / nh, p % nh, t0, Math.Min(seq, t0 + QueryBlock), pattern.AsSpan(p * block + t0 * tk, (Math.Min(seq, t0 + QueryBlock) - t0) * tk));
            });
        }
        else
        {
            // No pattern hook: one query block of probabilities at a time, so memory stays O(QueryBlock · keys).
            heads.For(batch * nh, p =>
            {
                var buf = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Min(seq, QueryBlock) * tk);
                try
                {
                    for (int t0 = 0; t0 < seq; t0 += QueryBlock)
                    {
                        int t1 = Math.Min(seq, t0 + QueryBlock);
                        var probs = buf.AsSpan(0, (t1 - t0) * tk);
                        Scores(p / nh, p % nh, t0, t1, probs);
                        Mix(p / nh, p % nh, t0, t1, probs);
                    }
                }
                finally { System.Buffers.ArrayPool<float>.Shared.Return(buf); }
            });
        }
        run.AtHeads(names.Z, s.Z, nh, dh);
        bw.O.Apply(s.Z, s.AttnOut, Compute);
    }

    private void Mlp(BlockWeights bw, Scratch s, LayerHookNames names, HookRun run)
    {
        var act = Config.Act;
        bw.In.Apply(s.H, s.MlpPre, Compute);
        run.At(names.MlpPre, s.MlpPre);
        if (bw.Up is not null)
        {
            bw.Up.Apply(s.H, s.MlpUp, Compute);
            run.At(names.MlpPreLinear, s.MlpUp);
        }
        Compute.ForRange(s.MlpPre.Rows, 8, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                Kernels.Activate(s.MlpPre.Row(r), s.MlpPost.Row(r), act);
                if (bw.Up is not null) TensorPrimitives.Multiply(s.MlpPost.Row(r), s.MlpUp.Row(r), s.MlpPost.Row(r));
            }
        });
        run.At(names.MlpPost, s.MlpPost);
        bw.Out.Apply(s.MlpPost, s.MlpOut, Compute);
        run.At(names.MlpOut, s.MlpOut);
    }

    private sealed class LayerHookNames(int l)
    {
        public readonly int Layer = l;
        public readonly string ResidPre = $"blocks.{l}.hook_resid_pre", Ln1 = $"blocks.{l}.ln1.hook_normalized",
            Q = $"blocks.{l}.attn.hook_q", K = $"blocks.{l}.attn.hook_k", V = $"blocks.{l}.attn.hook_v",
            RotQ = $"blocks.{l}.attn.hook_rot_q", RotK = $"blocks.{l}.attn.hook_rot_k",
            Pattern = $"blocks.{l}.attn.hook_pattern", Z = $"blocks.{l}.attn.hook_z", AttnOut = $"blocks.{l}.hook_attn_out",
            ResidMid = $"blocks.{l}.hook_resid_mid", Ln2 = $"blocks.{l}.ln2.hook_normalized",
            MlpPre = $"blocks.{l}.mlp.hook_pre", MlpPreLinear = $"blocks.{l}.mlp.hook_pre_linear",
            MlpPost = $"blocks.{l}.mlp.hook_post", MlpOut = $"blocks.{l}.hook_mlp_out", ResidPost = $"blocks.{l}.hook_resid_post";
    }

    /// <summary>Hook dispatch and caching for one forward pass.</summary>
    private sealed class HookRun
    {
        private readonly HashSet<string> _cacheNames;
        private readonly HookSet? _hooks;
        private readonly bool _batched;
        private readonly HookedTransformer _model;
        public int BatchSize { get; init; } = 1;
        public int Seq;
        public Dictionary<string, Tensor> Cache { get; } = new(StringComparer.Ordinal);

        public HookRun(HookedTransformer model, IReadOnlyCollection<string> cacheNames, HookSet? hooks, bool batched)
        {
            _model = model;
            _cacheNames = new HashSet<string>(cacheNames, StringComparer.Ordinal);
            _hooks = hooks;
            _batched = batched;
            foreach (var n in _cacheNames.Concat(hooks?.Names ?? []))
                if (!model._validNames.Contains(n)) throw new ArgumentException($"unknown hook point '{n}'; valid names: {model.DescribeNames()}");
        }

        /// <summary>Largest block index any cached name lies in (NLayers for ln_final, -1 for embeddings only).</summary>
        public int MaxCachedLayer(int nLayers) => _cacheNames.Select(n => LayerOf(n, nLayers)).DefaultIfEmpty(-1).Max();

        public string FirstNameAtOrAbove(int layer, int nLayers) => _cacheNames.First(n => LayerOf(n, nLayers) >= layer);

        /// <summary>A cached or hooked name in a block before <paramref name="layer"/> (the embeddings count as -1), or null.</summary>
        public string? FirstNameBelow(int layer, int nLayers) =>
            _cacheNames.Concat(_hooks?.Names ?? []).FirstOrDefault(n => LayerOf(n, nLayers) < layer);

        internal static int LayerOf(string name, int nLayers)
        {
            if (name.StartsWith("blocks.", StringComparison.Ordinal))
            {
                int dot = name.IndexOf('.', 7);
                return int.Parse(name.AsSpan(7, dot - 7));
            }
            return name.StartsWith("ln_final", StringComparison.Ordinal) ? nLayers : -1;
        }

        public bool Wants(string name) => _cacheNames.Contains(name) || (_hooks is not null && _hooks.TryGet(name, out _));

        /// <summary>A [rows, d] activation, seen as [seq, d] or [batch, seq, d].</summary>
        public void At(string name, Tensor t)
        {
            if (!Wants(name)) return;
            Apply(name, _batched ? t.Reshape(BatchSize, Seq, t.Cols) : t.Reshape(Seq, t.Cols));
        }

        /// <summary>A [rows, heads·dHead] activation, seen as [seq, head, dHead] (or with a batch axis).</summary>
        public void AtHeads(string name, Tensor t, int heads, int dHead)
        {
            if (!Wants(name)) return;
            Apply(name, _batched ? t.Reshape(BatchSize, Seq, heads, dHead) : t.Reshape(Seq, heads, dHead));
        }

        public void AtPattern(string name, float[] pattern, int batch, int heads, int seq, int keys)
        {
            if (!Wants(name)) return;
            Apply(name, new Tensor(pattern, _batched ? [batch, heads, seq, keys] : [heads, seq, keys]));
        }

        private void Apply(string name, Tensor view)
        {
            if (_hooks is not null && _hooks.TryGet(name, out var list))
                foreach (var f in list)
                {
                    var r = f(view);
                    if (ReferenceEquals(r, view)) continue;
                    if (!r.SameShape(view)) throw new InvalidOperationException($"hook on '{name}' returned shape [{r.ShapeString}], expected [{view.ShapeString}]");
                    r.Span.CopyTo(view.Span);
                }
            if (_cacheNames.Contains(name)) Cache[name] = view.Clone();
        }
    }

    private string DescribeNames()
    {
        int last = Config.NLayers - 1;
        var global = HookNames.Where(n => !n.StartsWith("blocks.", StringComparison.Ordinal));
        var perLayer = _layerNames.Length == 0 ? [] : HookNames.Where(n => n.StartsWith("blocks.0.", StringComparison.Ordinal))
            .Select(n => $"blocks.{{0..{last}}}." + n["blocks.0.".Length..]);
        return string.Join(", ", global.Concat(perLayer));
    }
}
