using System.Buffers.Binary;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Models;

/// <summary>Loads checkpoints: a Hugging Face folder (config.json + safetensors) or a llama2.c legacy .bin file.</summary>
public static class ModelLoader
{
    /// <summary>Loads a Hugging Face folder or a llama2.c <c>.bin</c> checkpoint, whichever <paramref name="path"/> is.</summary>
    public static (TransformerConfig Config, ModelWeights Weights) Load(string path)
    {
        if (Directory.Exists(path)) return LoadHuggingFace(path);
        if (File.Exists(path)) return LoadLlama2c(path);
        throw new FileNotFoundException($"model not found: {path} (expected a folder with config.json and model.safetensors, or a llama2.c .bin file)", path);
    }

    // Buffers some exporters save beside the weights; they hold no parameters.
    private static readonly string[] IgnoredSuffixes =
        [".attn.bias", ".attn.masked_bias", ".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq"];

    public static (TransformerConfig Config, ModelWeights Weights) LoadHuggingFace(string folder)
    {
        var cfg = TransformerConfig.FromHuggingFace(Path.Combine(folder, "config.json"));
        using var src = TensorSource.Open(folder);
        var w = cfg.Architecture switch
        {
            Architecture.Llama => LlamaWeights(cfg, src),
            Architecture.Gpt2 => Gpt2Weights(cfg, src),
            Architecture.GptNeox => NeoxWeights(cfg, src),
            _ => throw new NotSupportedException(cfg.Architecture.ToString()),
        };
        var unused = src.Names.Where(n => !src.Used.Contains(n) && !IgnoredSuffixes.Any(s => n.EndsWith(s, StringComparison.Ordinal))).ToList();
        if (unused.Count > 0)
            throw new InvalidDataException($"{folder}: tensors not part of a {cfg.Architecture} model with this config: {string.Join(", ", unused.Take(10))}{(unused.Count > 10 ? ", ..." : "")}");
        return (cfg, w);
    }

    private static ModelWeights LlamaWeights(TransformerConfig c, TensorSource s)
    {
        int d = c.DModel, q = c.NHeads * c.DHead, kv = c.NKvHeads * c.DHead;
        var blocks = new BlockWeights[c.NLayers];
        for (int l = 0; l < c.NLayers; l++)
        {
            string p = $"model.layers.{l}.";
            blocks[l] = new BlockWeights
            {
                Ln1 = new NormWeights(s.Read(p + "input_layernorm.weight", d), null),
                Ln2 = new NormWeights(s.Read(p + "post_attention_layernorm.weight", d), null),
                Q = new Linear(s.Read(p + "self_attn.q_proj.weight", q, d), s.ReadOptional(p + "self_attn.q_proj.bias", q), true),
                K = new Linear(s.Read(p + "self_attn.k_proj.weight", kv, d), s.ReadOptional(p + "self_attn.k_proj.bias", kv), true),
                V = new Linear(s.Read(p + "self_attn.v_proj.weight", kv, d), s.ReadOptional(p + "self_attn.v_proj.bias", kv), true),
                O = new Linear(s.Read(p + "self_attn.o_proj.weight", d, q), s.ReadOptional(p + "self_attn.o_proj.bias", d), true),
                In = new Linear(s.Read(p + "mlp.gate_proj.weight", c.DMlp, d), s.ReadOptional(p + "mlp.gate_proj.bias", c.DMlp), true),
                Up = new Linear(s.Read(p + "mlp.up_proj.weight", c.DMlp, d), s.ReadOptional(p + "mlp.up_proj.bias", c.DMlp), true),
                Out = new Linear(s.Read(p + "mlp.down_proj.weight", d, c.DMlp), s.ReadOptional(p + "mlp.down_proj.bias", d), true),
            };
        }
        var embed = s.Read("model.embed_tokens.weight", c.VocabSize, d);
        var head = c.TiedEmbeddings ? embed : s.Read("lm_head.weight", c.VocabSize, d);
        // Some exporters also write lm_head for tied models; it must then equal the embedding and is not used.
        if (c.TiedEmbeddings && s.Has("lm_head.weight")) s.Read("lm_head.weight", c.VocabSize, d);
        return new ModelWeights
        {
            Embed = embed, Blocks = blocks, LnFinal = new NormWeights(s.Read("model.norm.weight", d), null), Unembed = head,
        };
    }

    private static ModelWeights Gpt2Weights(TransformerConfig c, TensorSource s)
    {
        int d = c.DModel;
        // save_pretrained writes "transformer."; the original OpenAI-converted files have no prefix.
        string root = s.Has("transformer.wte.weight") ? "transformer." : "";
        var blocks = new BlockWeights[c.NLayers];
        for (int l = 0; l < c.NLayers; l++)
        {
            string p = $"{root}h.{l}.";
            blocks[l] = new BlockWeights
            {
                Ln1 = new NormWeights(s.Read(p + "ln_1.weight", d), s.Read(p + "ln_1.bias", d)),
                Ln2 = new NormWeights(s.Read(p + "ln_2.weight", d), s.Read(p + "ln_2.bias", d)),
                Qkv = new Linear(s.Read(p + "attn.c_attn.weight", d, 3 * d), s.Read(p + "attn.c_attn.bias", 3 * d), false),
                QkvLayout = FusedQkv.Blocks,
                O = new Linear(s.Read(p + "attn.c_proj.weight", d, d), s.Read(p + "attn.c_proj.bias", d), false),
                In = new Linear(s.Read(p + "mlp.c_fc.weight", d, c.DMlp), s.Read(p + "mlp.c_fc.bias", c.DMlp), false),
                Out = new Linear(s.Read(p + "mlp.c_proj.weight", c.DMlp, d), s.Read(p + "mlp.c_proj.bias", d), false),
            };
        }
        var wte = s.Read(root + "wte.weight", c.VocabSize, d);
        var head = c.TiedEmbeddings ? wte : s.Read("lm_head.weight", c.VocabSize, d);
        if (c.TiedEmbeddings && s.Has("lm_head.weight")) s.Read("lm_head.weight", c.VocabSize, d);
        return new ModelWeights
        {
            Embed = wte, PosEmbed = s.Read(root + "wpe.weight", c.MaxPositions, d), Blocks = blocks,
            LnFinal = new NormWeights(s.Read(root + "ln_f.weight", d), s.Read(root + "ln_f.bias", d)), Unembed = head,
        };
    }

    private static ModelWeights NeoxWeights(TransformerConfig c, TensorSource s)
    {
        int d = c.DModel;
        var blocks = new BlockWeights[c.NLayers];
        for (int l = 0; l < c.NLayers; l++)
        {
            string p = $"gpt_neox.layers.{l}.";
            blocks[l] = new BlockWeights
            {
                Ln1 = new NormWeights(s.Read(p + "input_layernorm.weight", d), s.Read(p + "input_layernorm.bias", d)),
                Ln2 = new NormWeights(s.Read(p + "post_attention_layernorm.weight", d), s.Read(p + "post_attention_layernorm.bias", d)),
                Qkv = new Linear(s.Read(p + "attention.query_key_value.weight", 3 * d, d), s.ReadOptional(p + "attention.query_key_value.bias", 3 * d), true),
                QkvLayout = FusedQkv.PerHead,
                O = new Linear(s.Read(p + "attention.dense.weight", d, d), s.ReadOptional(p + "attention.dense.bias", d), true),
                In = new Linear(s.Read(p + "mlp.dense_h_to_4h.weight", c.DMlp, d), s.ReadOptional(p + "mlp.dense_h_to_4h.bias", c.DMlp), true),
                Out = new Linear(s.Read(p + "mlp.dense_4h_to_h.weight", d, c.DMlp), s.ReadOptional(p + "mlp.dense_4h_to_h.bias", d), true),
            };
        }
        var embed = s.Read("gpt_neox.embed_in.weight", c.VocabSize, d);
        var head = c.TiedEmbeddings ? embed : s.Read("embed_out.weight", c.VocabSize, d);
        return new ModelWeights
        {
            Embed = embed, Blocks = blocks,
            LnFinal = new NormWeights(s.Read("gpt_neox.final_layer_norm.weight", d), s.Read("gpt_neox.final_layer_norm.bias", d)),
            Unembed = head,
        };
    }

    /// <summary>
    /// llama2.c legacy checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
    /// negative vocab_size means an untied classifier at the end), then float32 tensors [out, in]. Its q/k rows are in
    /// llama2.c order, so it uses adjacent-pair RoPE.
    /// </summary>
    public static (TransformerConfig Config, ModelWeights Weights) LoadLlama2c(string path)
    {
        long fileLength = new FileInfo(path).Length;
        if (fileLength < 28) throw new InvalidDataException($"{path}: {fileLength} bytes is too short for the 28-byte llama2.c header");
        var header = new byte[28];
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read)) fs.ReadExactly(header);
        int H(int i) => BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4 * i));
        int dim = H(0), hidden = H(1), layers = H(2), heads = H(3), kvHeads = H(4), vocabRaw = H(5), seqLen = H(6);
        bool shared = vocabRaw > 0;
        int vocab = Math.Abs(vocabRaw);
        string[] names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
        int[] values = [dim, hidden, layers, heads, kvHeads, vocab, seqLen];
        for (int i = 0; i < values.Length; i++)
            if (values[i] <= 0 || values[i] > 1 << 20) throw new InvalidDataException($"{path}: header field {names[i]} = {values[i]} is not a plausible size");
        if (dim % heads != 0) throw new InvalidDataException($"{path}: dim {dim} is not a multiple of n_heads {heads}");
        int dHead = dim / heads, kvDim = kvHeads * dHead;
        var cfg = new TransformerConfig
        {
            Architecture = Architecture.Llama, DModel = dim, NLayers = layers, NHeads = heads, NKvHeads = kvHeads, DHead = dHead,
            DMlp = hidden, VocabSize = vocab, MaxPositions = seqLen, Norm = NormKind.RmsNorm, NormEps = 1e-5f,
            Act = Activation.Silu, GatedMlp = true, LearnedPositions = false, Rope = RopeLayout.AdjacentPair, RotaryDim = dHead,
            RopeTheta = 10000, ParallelResidual = false, TiedEmbeddings = shared, BosTokenId = 1, EosTokenId = 2,
        };
        cfg.Validate(path);

        long expected = 28 + 4L * ((long)vocab * dim + layers * (2L * dim + (long)dim * dim * 2 + 2L * kvDim * dim + 3L * hidden * dim)
                                    + dim + (long)seqLen * dHead + (shared ? 0 : (long)vocab * dim));
        // Sizes are checked against the header before the weights are read.
        if (fileLength != expected)
            throw new InvalidDataException($"{path}: file is {fileLength} bytes, but the header (dim {dim}, hidden {hidden}, layers {layers}, heads {heads}, kv heads {kvHeads}, vocab {vocabRaw}, seq_len {seqLen}) implies {expected}");
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length != expected) throw new InvalidDataException($"{path}: file changed while being read");
        long offset = 28;
        Tensor Next(string name, params int[] shape)
        {
            var t = Tensor.Uninitialized(shape);
            int n = t.Length;
            DTypes.ToFloat32(DType.F32, bytes.AsSpan((int)offset, 4 * n), t.Span);
            offset += 4L * n;
            CheckFinite(t, path, name);
            return t;
        }
        Tensor[] PerLayer(string name, params int[] shape)
        {
            var all = Next(name, [layers, .. shape]);
            return Enumerable.Range(0, layers).Select(l => all.RowSlice(l, 1).Reshape(shape)).ToArray();
        }
        var embed = Next("tok_embeddings", vocab, dim);
        var rmsAtt = PerLayer("rms_att", dim);
        var wq = PerLayer("wq", dim, dim);
        var wk = PerLayer("wk", kvDim, dim);
        var wv = PerLayer("wv", kvDim, dim);
        var wo = PerLayer("wo", dim, dim);
        var rmsFfn = PerLayer("rms_ffn", dim);
        var w1 = PerLayer("w1", hidden, dim);
        var w2 = PerLayer("w2", dim, hidden);
        var w3 = PerLayer("w3", hidden, dim);
        var rmsFinal = Next("rms_final", dim);
        offset += 4L * seqLen * dHead; // freq_cis_real, freq_cis_imag: recomputed instead
        var head = shared ? embed : Next("wcls", vocab, dim);
        var blocks = new BlockWeights[layers];
        for (int l = 0; l < layers; l++)
            blocks[l] = new BlockWeights
            {
                Ln1 = new NormWeights(rmsAtt[l], null), Ln2 = new NormWeights(rmsFfn[l], null),
                Q = new Linear(wq[l], null, true), K = new Linear(wk[l], null, true), V = new Linear(wv[l], null, true),
                O = new Linear(wo[l], null, true),
                In = new Linear(w1[l], null, true), Up = new Linear(w3[l], null, true), Out = new Linear(w2[l], null, true),
            };
        return (cfg, new ModelWeights { Embed = embed, Blocks = blocks, LnFinal = new NormWeights(rmsFinal, null), Unembed = head });
    }

    /// <summary>
    /// The weights of a model folder (<see cref="SafetensorsModel"/>: one model.safetensors or the shards of its
    /// index), read as float32 with their shapes checked, refusing integer dtypes and non-finite values, and
    /// remembering which tensors were used.
    /// </summary>
    private sealed class TensorSource(string folder, SafetensorsModel model) : IDisposable
    {
        public HashSet<string> Used { get; } = new(StringComparer.Ordinal);
        public IEnumerable<string> Names => model.Names;

        public static TensorSource Open(string folder) => new(folder, SafetensorsModel.Open(folder));

        public bool Has(string name) => model.Contains(name);

        public Tensor Read(string name, params int[] shape)
        {
            if (!model.Contains(name))
                throw new InvalidDataException($"{folder}: missing tensor '{name}' (expected shape [{string.Join(", ", shape)}]) in {model.Path}");
            Used.Add(name);
            string file = model.ShardPath(name);
            var dtype = model.Entry(name).DType;
            // Integer tensors would otherwise be converted value by value and run as if they were weights.
            if (!dtype.IsFloat())
                throw new InvalidDataException($"{file}: tensor '{name}' is {dtype.Name()}; model weights must be F32, F16, BF16 or F64");
            var t = model.ReadFloat32(name, shape);
            CheckFinite(t, file, name);
            return t;
        }

        public Tensor? ReadOptional(string name, params int[] shape) => Has(name) ? Read(name, shape) : null;

        public void Dispose() => model.Dispose();
    }

    /// <summary>Throws naming the file, tensor and element when a weight is NaN or infinite (the model would only print garbage).</summary>
    private static void CheckFinite(Tensor t, string file, string name)
    {
        int at = t.IndexOfNonFinite();
        if (at >= 0)
            throw new InvalidDataException($"{file}: tensor '{name}' holds {t.Span[at]} at {t.IndexString(at)}; model weights must be finite");
    }
}
