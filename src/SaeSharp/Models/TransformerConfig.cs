using System.Text.Json;

namespace SaeSharp.Models;

/// <summary>Model families the runtime knows how to load.</summary>
public enum Architecture { Llama, Gpt2, GptNeox }

public enum NormKind { RmsNorm, LayerNorm }

/// <summary>MLP nonlinearity. Gated MLPs (Llama) apply it to the gate and multiply by the up projection.</summary>
public enum Activation { Silu, GeluTanh, GeluExact, Relu }

/// <summary>
/// How rotary embeddings pair dimensions: <see cref="HalfSplit"/> rotates (i, i + r/2) (Hugging Face), 
/// <see cref="AdjacentPair"/> rotates (2i, 2i+1) (llama2.c and Meta's original checkpoints).
/// </summary>
public enum RopeLayout { None, HalfSplit, AdjacentPair }

/// <summary>Architecture hyper-parameters shared by every supported family.</summary>
public sealed record TransformerConfig
{
    public required Architecture Architecture { get; init; }
    public required int DModel { get; init; }
    public required int NLayers { get; init; }
    public required int NHeads { get; init; }
    /// <summary>Key/value heads; fewer than <see cref="NHeads"/> means grouped-query attention.</summary>
    public required int NKvHeads { get; init; }
    public required int DHead { get; init; }
    public required int DMlp { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>Longest sequence the model supports (n_positions, max_position_embeddings, llama2.c seq_len); longer ones are refused.</summary>
    public required int MaxPositions { get; init; }
    public required NormKind Norm { get; init; }
    public required float NormEps { get; init; }
    public required Activation Act { get; init; }
    public required bool GatedMlp { get; init; }
    public required bool LearnedPositions { get; init; }
    public required RopeLayout Rope { get; init; }
    /// <summary>Leading dims of each head that rotary embedding acts on (GPT-NeoX rotary_pct); 0 without rotary.</summary>
    public required int RotaryDim { get; init; }
    public required double RopeTheta { get; init; }
    public required bool ParallelResidual { get; init; }
    public required bool TiedEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }

    /// <summary>Query heads sharing one key/value head.</summary>
    public int GroupSize => NHeads / NKvHeads;

    internal void Validate(string source)
    {
        void Positive(string key, int v) { if (v <= 0) throw new InvalidDataException($"{source}: '{key}' must be positive, got {v}"); }
        Positive("d_model", DModel); Positive("n_layers", NLayers); Positive("n_heads", NHeads); Positive("n_kv_heads", NKvHeads);
        Positive("d_head", DHead); Positive("d_mlp", DMlp); Positive("vocab_size", VocabSize); Positive("max_positions", MaxPositions);
        if (NHeads % NKvHeads != 0)
            throw new InvalidDataException($"{source}: num_key_value_heads {NKvHeads} does not divide num_attention_heads {NHeads}");
        if (Rope != RopeLayout.None && (RotaryDim <= 0 || RotaryDim > DHead || RotaryDim % 2 != 0))
            throw new InvalidDataException($"{source}: rotary dimension {RotaryDim} must be even and in (0, head size {DHead}]");
        // Products in 64 bits: every weight must fit one array, checked before anything is allocated.
        void Fits(string what, long rows, long cols)
        {
            if (rows * cols > Array.MaxLength)
                throw new InvalidDataException($"{source}: {what} = {rows} x {cols} = {rows * cols} elements, more than one tensor can hold ({Array.MaxLength})");
        }
        Fits("vocab_size x d_model (embedding)", VocabSize, DModel);
        Fits("n_heads x d_head x d_model (query projection)", (long)NHeads * DHead, DModel);
        Fits("d_mlp x d_model (MLP projection)", DMlp, DModel);
        if (LearnedPositions) Fits("max_positions x d_model (position embedding)", MaxPositions, DModel);
    }

    /// <summary>Reads a Hugging Face config.json (model_type llama, gpt2 or gpt_neox).</summary>
    public static TransformerConfig FromHuggingFace(string configPath)
    {
        if (!File.Exists(configPath)) throw new FileNotFoundException($"model config not found: {configPath}", configPath);
        long length = new FileInfo(configPath).Length;
        if (length > IO.JsonConfig.MaxBytes) throw new InvalidDataException($"{configPath}: {length} bytes is over the {IO.JsonConfig.MaxBytes}-byte limit for a config file");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(configPath)); }
        catch (JsonException e) { throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message})", e); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{configPath}: the top level is a JSON {doc.RootElement.ValueKind.ToString().ToLowerInvariant()}, expected an object of settings");
        var j = new JsonConfig(configPath, doc.RootElement);
        string type = j.String("model_type");
        var cfg = type switch
        {
            "llama" or "mistral" => Llama(j),
            "gpt2" => Gpt2(j),
            "gpt_neox" => GptNeox(j),
            _ => throw new NotSupportedException($"{configPath}: model_type '{type}' is not supported (expected llama, gpt2 or gpt_neox)"),
        };
        cfg.Validate(configPath);
        return cfg;
    }

    private static TransformerConfig Llama(JsonConfig j)
    {
        int d = j.Size("hidden_size"), heads = j.Size("num_attention_heads");
        if (j.Has("rope_scaling") && !j.IsNull("rope_scaling"))
            throw new NotSupportedException($"{j.Path}: 'rope_scaling' is set; scaled rotary embeddings are not supported");
        string act = j.StringOr("hidden_act", "silu");
        if (j.Has("sliding_window") && !j.IsNull("sliding_window"))
            throw new NotSupportedException($"{j.Path}: 'sliding_window' is set; sliding-window attention is not supported");
        int dHead = j.SizeOr("head_dim", d / heads);
        return new TransformerConfig
        {
            Architecture = Architecture.Llama,
            DModel = d, NLayers = j.Size("num_hidden_layers"), NHeads = heads,
            NKvHeads = j.SizeOr("num_key_value_heads", heads), DHead = dHead,
            DMlp = j.Size("intermediate_size"), VocabSize = j.Size("vocab_size"),
            MaxPositions = j.SizeOr("max_position_embeddings", 2048),
            Norm = NormKind.RmsNorm, NormEps = (float)j.DoubleOr("rms_norm_eps", 1e-6),
            Act = ParseAct(j, "hidden_act", act), GatedMlp = true, LearnedPositions = false,
            Rope = RopeLayout.HalfSplit, RotaryDim = dHead, RopeTheta = j.DoubleOr("rope_theta", 10000),
            ParallelResidual = false, TiedEmbeddings = j.BoolOr("tie_word_embeddings", false),
            BosTokenId = j.IntOrNull("bos_token_id"), EosTokenId = j.IntOrNull("eos_token_id"),
        };
    }

    private static TransformerConfig Gpt2(JsonConfig j)
    {
        int d = j.Size("n_embd"), heads = j.Size("n_head");
        if (j.BoolOr("scale_attn_by_inverse_layer_idx", false))
            throw new NotSupportedException($"{j.Path}: 'scale_attn_by_inverse_layer_idx' true is not supported");
        if (!j.BoolOr("scale_attn_weights", true))
            throw new NotSupportedException($"{j.Path}: 'scale_attn_weights' false is not supported");
        if (d % heads != 0) throw new InvalidDataException($"{j.Path}: n_embd {d} is not a multiple of n_head {heads}");
        return new TransformerConfig
        {
            Architecture = Architecture.Gpt2,
            DModel = d, NLayers = j.Size("n_layer"), NHeads = heads, NKvHeads = heads, DHead = d / heads,
            DMlp = j.SizeOrNull("n_inner") ?? FourTimes(j, "n_embd", d), VocabSize = j.Size("vocab_size"),
            MaxPositions = j.Size("n_positions"),
            Norm = NormKind.LayerNorm, NormEps = (float)j.DoubleOr("layer_norm_epsilon", 1e-5),
            Act = ParseAct(j, "activation_function", j.StringOr("activation_function", "gelu_new")), GatedMlp = false,
            LearnedPositions = true, Rope = RopeLayout.None, RotaryDim = 0, RopeTheta = 0,
            ParallelResidual = false, TiedEmbeddings = j.BoolOr("tie_word_embeddings", true),
            BosTokenId = j.IntOrNull("bos_token_id"), EosTokenId = j.IntOrNull("eos_token_id"),
        };
    }

    private static TransformerConfig GptNeox(JsonConfig j)
    {
        int d = j.Size("hidden_size"), heads = j.Size("num_attention_heads");
        if (d % heads != 0) throw new InvalidDataException($"{j.Path}: hidden_size {d} is not a multiple of num_attention_heads {heads}");
        if (j.Has("rope_scaling") && !j.IsNull("rope_scaling"))
            throw new NotSupportedException($"{j.Path}: 'rope_scaling' is set; scaled rotary embeddings are not supported");
        int dHead = d / heads;
        double pct = j.DoubleOr("rotary_pct", 1.0);
        if (!(pct > 0 && pct <= 1)) throw new InvalidDataException($"{j.Path}: 'rotary_pct' must be in (0, 1], got {pct}");
        return new TransformerConfig
        {
            Architecture = Architecture.GptNeox,
            DModel = d, NLayers = j.Size("num_hidden_layers"), NHeads = heads, NKvHeads = heads, DHead = dHead,
            DMlp = j.Size("intermediate_size"), VocabSize = j.Size("vocab_size"),
            MaxPositions = j.SizeOr("max_position_embeddings", 2048),
            Norm = NormKind.LayerNorm, NormEps = (float)j.DoubleOr("layer_norm_eps", 1e-5),
            Act = ParseAct(j, "hidden_act", j.StringOr("hidden_act", "gelu")), GatedMlp = false, LearnedPositions = false,
            // HF: rotary_ndims = int(head_size * rotary_pct)
            Rope = RopeLayout.HalfSplit, RotaryDim = (int)(dHead * pct), RopeTheta = j.DoubleOr("rotary_emb_base", 10000),
            ParallelResidual = j.BoolOr("use_parallel_residual", true), TiedEmbeddings = j.BoolOr("tie_word_embeddings", false),
            BosTokenId = j.IntOrNull("bos_token_id"), EosTokenId = j.IntOrNull("eos_token_id"),
        };
    }

    /// <summary>GPT-2's default MLP width 4·n_embd, computed in 64 bits.</summary>
    private static int FourTimes(JsonConfig j, string key, int d) =>
        4L * d <= int.MaxValue ? 4 * d
            : throw new InvalidDataException($"{j.Path}: '{key}' {d} gives an MLP width of 4 x {d} = {4L * d}, too large for a tensor dimension");

    private static Activation ParseAct(JsonConfig j, string key, string value) => value switch
    {
        "silu" or "swish" => Activation.Silu,
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => Activation.GeluTanh,
        "gelu" => Activation.GeluExact,
        "relu" => Activation.Relu,
        _ => throw new NotSupportedException($"{j.Path}: '{key}' = '{value}' is not supported (expected silu, gelu, gelu_new, gelu_pytorch_tanh or relu)"),
    };

    /// <summary>Typed access to config.json keys with errors that name the file and the key.</summary>
    private sealed class JsonConfig(string path, JsonElement root)
    {
        public string Path { get; } = path;

        public bool Has(string key) => root.TryGetProperty(key, out _);
        public bool IsNull(string key) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Null;

        private JsonElement Get(string key) =>
            root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v
                : throw new InvalidDataException($"{Path}: required key '{key}' is missing");

        public int Int(string key)
        {
            var v = Get(key);
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int x))
                throw new InvalidDataException($"{Path}: '{key}' must be an integer, got {v}");
            return x;
        }

        /// <summary>A size: an integer &gt; 0 (zero or negative sizes would divide by zero or wrap around later).</summary>
        public int Size(string key) => Positive(key, Int(key));

        public int SizeOr(string key, int fallback) => SizeOrNull(key) ?? fallback;

        public int? SizeOrNull(string key) => IntOrNull(key) is int v ? Positive(key, v) : null;

        private int Positive(string key, int v) =>
            v > 0 ? v : throw new InvalidDataException($"{Path}: '{key}' must be a positive integer, got {v}");

        public int? IntOrNull(string key)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            // eos_token_id may be a list in newer configs; the first entry is the main one.
            if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0) v = v[0];
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int x))
                throw new InvalidDataException($"{Path}: '{key}' must be an integer, got {v}");
            return x;
        }

        public double DoubleOr(string key, double fallback)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            if (v.ValueKind != JsonValueKind.Number) throw new InvalidDataException($"{Path}: '{key}' must be a number, got {v}");
            return v.GetDouble();
        }

        public bool BoolOr(string key, bool fallback)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new InvalidDataException($"{Path}: '{key}' must be true or false, got {v}"),
            };
        }

        public string String(string key)
        {
            var v = Get(key);
            return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new InvalidDataException($"{Path}: '{key}' must be a string, got {v}");
        }

        public string StringOr(string key, string fallback) =>
            root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? String(key) : fallback;
    }
}
