using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Saes;

/// <summary>
/// SAELens folder layout: cfg.json, sae_weights.safetensors, sparsity.safetensors (log10 feature density,
/// tensor "sparsity"). Also imports EleutherAI sparsify folders (cfg.json + sae.safetensors).
/// </summary>
public static class SaeFiles
{
    public const string ConfigFile = "cfg.json";
    public const string WeightsFile = "sae_weights.safetensors";
    public const string SparsityFile = "sparsity.safetensors";
    public const string SparsifyWeightsFile = "sae.safetensors";

    /// <summary>
    /// The SAELens version whose cfg.json layout SaeSharp writes, stored as metadata.sae_lens_version: SAELens reads a
    /// cfg without one (or below 6.0) as pre-6.0 and rebuilds its metadata from top-level keys, losing hook_name,
    /// model_name and context_size and setting prepend_bos.
    /// </summary>
    public const string SaeLensFormatVersion = "6.37.0";

    /// <summary>SAELens architectures SaeSharp does not implement: named as such rather than failing on their keys.</summary>
    public static readonly IReadOnlyList<string> UnsupportedSaeLensArchitectures =
        ["matching_pursuit", "temporal"];

    // SAELens training-time keys that may appear in a cfg.json: accepted, not used for inference.
    // The architectures' own (SaeRegistry.AllTrainingCfgKeys) and these, which SaeSharp does not write per architecture.
    private static readonly HashSet<string> TrainingKeys =
    [
        .. SaeRegistry.AllTrainingCfgKeys,
        "use_sparse_activations", "reshape_activations", "apply_b_dec_to_input", "normalize_activations", "use_matryoshka_aux_loss",
    ];

    // Pre-6.0 top-level keys that v6 moved under metadata.
    private static readonly HashSet<string> LegacyMetadataKeys =
    [
        "model_name", "hook_name", "hook_layer", "hook_head_index", "prepend_bos", "dataset_path",
        "dataset_trust_remote_code", "context_size", "model_from_pretrained_kwargs", "seqpos_slice", "neuronpedia_id",
        "sae_lens_training_version", "sae_lens_version", "exclude_special_tokens", "model_class_name",
        "hook_point_layer", "hook_point_head_index", "finetuning_scaling_factor", "da_name",
        // Transcoder output hooks, top-level in some SAELens versions, metadata in 6.x.
        "hook_name_out", "hook_layer_out", "hook_head_index_out",
    ];

    /// <param name="trainingKeys">SAELens training-config keys (l1_coefficient, decoder_init_norm, ...) written at the top level beside the inference keys.</param>
    public static void Save(Sae sae, string folder, float[]? log10Density = null, JsonObject? trainingKeys = null)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), ConfigToJson(sae.Config, trainingKeys).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var w = new SafetensorsWriter();
        foreach (var (n, t) in sae.Params) w.Add(n, t);
        if (sae is TopKSae { IsBatch: true } b) w.Add("topk_threshold", Tensor.FromArray([(float)b.TopKThreshold], 1));
        w.Write(Path.Combine(folder, WeightsFile));
        if (log10Density is not null) SaveSparsity(folder, log10Density);
    }

    public static void SaveSparsity(string folder, float[] log10Density)
    {
        new SafetensorsWriter().Add("sparsity", Tensor.FromArray((float[])log10Density.Clone(), log10Density.Length))
            .Write(Path.Combine(folder, SparsityFile));
    }

    /// <summary>log10 feature density from sparsity.safetensors, or null when the folder has none.</summary>
    public static float[]? LoadSparsity(string folder, int dSae)
    {
        string p = Path.Combine(folder, SparsityFile);
        if (!File.Exists(p)) return null;
        using var f = SafetensorsFile.Open(p);
        return f.ReadFloat32("sparsity", dSae).ToArray();
    }

    /// <summary>How each architecture-specific cfg key (<see cref="SaeArchitecture.CfgKeys"/>) is written.</summary>
    internal static readonly IReadOnlyDictionary<string, Func<SaeConfig, JsonNode?>> ArchitectureKeys = new Dictionary<string, Func<SaeConfig, JsonNode?>>
    {
        ["k"] = c => c.K,
        ["rescale_acts_by_decoder_norm"] = c => c.RescaleActsByDecoderNorm,
        ["topk_threshold_lr"] = c => c.TopKThresholdLr,
        ["matryoshka_widths"] = c => new JsonArray([.. c.MatryoshkaWidths!.Select(w => (JsonNode)w)]),
        ["d_out"] = c => c.DOut,
        ["jumprelu_init_threshold"] = c => c.JumpReluInitThreshold,
        ["jumprelu_bandwidth"] = c => c.JumpReluBandwidth,
    };

    public static JsonObject ConfigToJson(SaeConfig c, JsonObject? trainingKeys = null)
    {
        var o = new JsonObject
        {
            ["architecture"] = c.Architecture,
            ["d_in"] = c.DIn,
            ["d_sae"] = c.DSae,
            ["dtype"] = "float32",
            ["device"] = c.Device,
            ["apply_b_dec_to_input"] = c.ApplyBDecToInput,
            ["normalize_activations"] = c.NormalizeActivations,
            ["reshape_activations"] = "none",
        };
        foreach (var key in c.Kind.CfgKeys) o[key] = ArchitectureKeys[key](c);
        // Training keys never replace an inference key of the same name (k, rescale_acts_by_decoder_norm, ...).
        foreach (var (key, value) in trainingKeys ?? [])
            if (!o.ContainsKey(key)) o[key] = value?.DeepClone();
        var meta = (JsonObject)c.Metadata.DeepClone();
        if (MajorVersion(meta["sae_lens_version"]) is not >= 6) meta["sae_lens_version"] = SaeLensFormatVersion;
        if (meta["sae_lens_training_version"] is null) meta["sae_lens_training_version"] = SaeLensFormatVersion;
        o["metadata"] = meta;
        return o;
    }

    /// <summary>The major number of a version string such as "6.0.0-rc.1" (null when absent or not a version).</summary>
    private static int? MajorVersion(JsonNode? version)
    {
        if (version is not JsonValue v || !v.TryGetValue(out string? text)) return null;
        int dot = text.IndexOf('.');
        return int.TryParse(dot < 0 ? text : text[..dot], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int major) ? major : null;
    }

    /// <summary>Parses cfg.json text (v6, or pre-6.0 converted); <paramref name="source"/> names it in errors.</summary>
    public static SaeConfig ConfigFromJson(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException($"{source}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: invalid JSON: {e.Message}"); }
        var meta = o["metadata"] as JsonObject ?? [];
        meta = (JsonObject)meta.DeepClone();
        string? arch = Str(o, "architecture", source);
        // Named before their keys are checked: they would otherwise fail on a key of their own (residual_threshold, ...).
        if (arch is not null && UnsupportedSaeLensArchitectures.Contains(arch))
            throw new NotSupportedException($"{source}: architecture '{arch}' is a SAELens architecture SaeSharp does not implement (it reads {string.Join(", ", SaeRegistry.Names)})");
        int k = 0;
        // Pre-6.0: hook_point → hook_name, activation_fn(_str) names the architecture, k in activation_fn_kwargs.
        string? act = Str(o, "activation_fn", source) ?? Str(o, "activation_fn_str", source);
        if (act is not null)
        {
            if (act == "topk")
            {
                arch ??= "topk";
                k = (o["activation_fn_kwargs"] as JsonObject is { } kwargs ? WholeNumber(kwargs, "k", $"{source} activation_fn_kwargs") : null)
                    ?? throw new InvalidDataException($"{source}: activation_fn 'topk' needs activation_fn_kwargs.k");
            }
            else if (act == "relu") arch ??= "standard";
            else throw new InvalidDataException($"{source}: 'activation_fn': unsupported '{act}' (expected relu or topk)");
        }
        arch ??= "standard";
        var known = new HashSet<string>(TrainingKeys.Concat(SaeRegistry.AllCfgKeys))
        {
            "architecture", "d_in", "d_sae", "dtype", "device", "metadata", "activation_fn", "activation_fn_str",
            "activation_fn_kwargs", "hook_point",
        };
        foreach (var (key, value) in o)
        {
            if (key == "hook_point") { meta["hook_name"] = value?.DeepClone(); continue; }
            if (LegacyMetadataKeys.Contains(key)) { meta[key] = value?.DeepClone(); continue; }
            if (!known.Contains(key)) throw new InvalidDataException($"{source}: unknown cfg key '{key}'");
        }
        string dtype = Str(o, "dtype", source) ?? "float32";
        if (dtype.StartsWith("torch.", StringComparison.Ordinal)) dtype = dtype["torch.".Length..];
        string? norm = Str(o, "normalize_activations", source);
        var cfg = new SaeConfig
        {
            Architecture = arch,
            DIn = Int(o, "d_in", source) ?? throw new InvalidDataException($"{source}: missing 'd_in'"),
            DSae = Int(o, "d_sae", source) ?? throw new InvalidDataException($"{source}: missing 'd_sae'"),
            Dtype = dtype,
            Device = Str(o, "device", source) ?? "cpu",
            ApplyBDecToInput = Bool(o, "apply_b_dec_to_input", source) ?? true,
            NormalizeActivations = norm is null or "None" ? "none" : norm,
            K = WholeNumber(o, "k", source) ?? k,
            RescaleActsByDecoderNorm = Bool(o, "rescale_acts_by_decoder_norm", source) ?? false,
            TopKThresholdLr = Dbl(o, "topk_threshold_lr", source) ?? 0.01,
            JumpReluInitThreshold = Dbl(o, "jumprelu_init_threshold", source) ?? 0.01,
            JumpReluBandwidth = Dbl(o, "jumprelu_bandwidth", source) ?? 0.05,
            DOut = Int(o, "d_out", source) ?? 0,
            MatryoshkaWidths = IntList(o, "matryoshka_widths", source),
            Metadata = meta,
        };
        try { cfg.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{source}: {e.Message}"); }
        return cfg;
    }

    /// <summary>Loads an SAELens folder; the SAE's kernels run on <paramref name="compute"/>.</summary>
    public static Sae Load(string folder, Compute compute)
    {
        string cfgPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{folder}: no {ConfigFile} (not an SAE folder)", cfgPath);
        var cfg = ConfigFromJson(File.ReadAllText(cfgPath), cfgPath);
        string wPath = Path.Combine(folder, WeightsFile);
        if (!File.Exists(wPath)) throw new FileNotFoundException($"{folder}: no {WeightsFile}", wPath);
        var sae = SaeRegistry.Create(cfg, compute);
        using var f = SafetensorsFile.Open(wPath);
        foreach (var (name, t) in sae.Params)
        {
            if (name == "threshold" && !f.Contains("threshold") && f.Contains("log_threshold"))
            {
                var lt = ReadChecked(f, "log_threshold", t, cfgPath);
                for (int i = 0; i < lt.Length; i++) t[i] = MathF.Exp(lt[i]);
                continue;
            }
            ReadChecked(f, name, t, cfgPath).Span.CopyTo(t.Span);
        }
        foreach (var n in f.Names)
        {
            if (sae.Params.Contains(n) || n == "log_threshold" && sae.Params.Contains("threshold")) continue;
            if (n == "topk_threshold" && sae is TopKSae { IsBatch: true } tk)
            {
                tk.TopKThreshold = f.ReadFloat32(n).Span[0];
                continue;
            }
            throw new InvalidDataException($"{wPath}: tensor '{n}' is not a parameter of a {cfg.Architecture} SAE");
        }
        return sae;
    }

    private static Tensor ReadChecked(SafetensorsFile f, string name, Tensor like, string cfgPath)
    {
        var e = f.Entry(name);
        if (!e.Shape.AsSpan().SequenceEqual(like.Shape))
            throw new InvalidDataException($"{f.Path}: tensor '{name}' has shape [{string.Join(", ", e.Shape)}] but {cfgPath} (d_in, d_sae, d_out) implies [{like.ShapeString}]");
        return f.ReadFloat32(name);
    }

    /// <summary>
    /// Imports an EleutherAI sparsify TopK SAE folder: encoder.weight [num_latents, d_in] becomes W_enc
    /// (transposed), encoder.bias b_enc, W_dec and b_dec as they are; k from cfg.json.
    /// </summary>
    public static Sae ImportSparsify(string folder, Compute compute)
    {
        string cfgPath = Path.Combine(folder, ConfigFile), wPath = Path.Combine(folder, SparsifyWeightsFile);
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{folder}: no {ConfigFile}", cfgPath);
        if (!File.Exists(wPath)) throw new FileNotFoundException($"{folder}: no {SparsifyWeightsFile}", wPath);
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(cfgPath)) as JsonObject ?? throw new InvalidDataException($"{cfgPath}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{cfgPath}: invalid JSON: {e.Message}"); }
        // Variants whose weights have the same names but compute something else must not load as a plain TopK SAE.
        if (Str(o, "activation", cfgPath) is { } activation && activation != "topk")
            throw new NotSupportedException($"{cfgPath}: sparsify activation '{activation}' is not supported (only topk imports)");
        if (Bool(o, "transcode", cfgPath) == true)
            throw new NotSupportedException($"{cfgPath}: sparsify transcoders (transcode: true) are not supported; only SAEs (transcode false) import");
        int k = WholeNumber(o, "k", cfgPath) ?? throw new InvalidDataException($"{cfgPath}: missing 'k'");
        using var f = SafetensorsFile.Open(wPath);
        var enc = f.Entry("encoder.weight");
        if (enc.Shape.Length != 2) throw new InvalidDataException($"{wPath}: 'encoder.weight' must be [num_latents, d_in], got [{string.Join(", ", enc.Shape)}]");
        int dSae = enc.Shape[0], dIn = enc.Shape[1];
        if (Int(o, "d_in", cfgPath) is { } cd && cd != dIn) throw new InvalidDataException($"{cfgPath}: 'd_in' is {cd} but encoder.weight has {dIn} columns");
        if (Int(o, "num_latents", cfgPath) is { } nl && nl != 0 && nl != dSae) throw new InvalidDataException($"{cfgPath}: 'num_latents' is {nl} but encoder.weight has {dSae} rows");
        if (f.Contains("W_skip")) throw new InvalidDataException($"{wPath}: skip connections (W_skip) are not supported for sparsify import");
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = TopKSae.TopKArchitecture.Name, DIn = dIn, DSae = dSae, K = k }, compute);
        Ops.TransposeInto(f.ReadFloat32("encoder.weight"), sae.WEnc, accumulate: false, compute: compute);
        f.ReadFloat32("encoder.bias", dSae).Span.CopyTo(sae.Params["b_enc"].Span);
        f.ReadFloat32("W_dec", dSae, dIn).Span.CopyTo(sae.WDec.Span);
        f.ReadFloat32("b_dec", dIn).Span.CopyTo(sae.BDec.Span);
        return sae;
    }

    private static JsonNode? Get(JsonObject o, string key) => o.TryGetPropertyValue(key, out var v) ? v : null;

    private static string? Str(JsonObject o, string key, string src)
    {
        var v = Get(o, key);
        if (v is null) return null;
        return v is JsonValue jv && jv.TryGetValue(out string? s) ? s : throw new InvalidDataException($"{src}: '{key}' must be a string, got {v.ToJsonString()}");
    }

    private static int? Int(JsonObject o, string key, string src)
    {
        var v = Get(o, key);
        if (v is null) return null;
        return v is JsonValue jv && jv.TryGetValue(out int i) ? i : throw new InvalidDataException($"{src}: '{key}' must be an integer, got {v.ToJsonString()}");
    }

    /// <summary>An integer, also when written as a float with no fraction (SAELens types batchtopk's k as a float: 16.0).</summary>
    private static int? WholeNumber(JsonObject o, string key, string src)
    {
        var v = Get(o, key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.TryGetValue(out int i)) return i;
        if (v is JsonValue dv && dv.TryGetValue(out double d))
            return d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue ? (int)d
                : throw new InvalidDataException($"{src}: '{key}' = {v.ToJsonString()} is not a whole number; SaeSharp keeps a whole number of latents per row (on average for batchtopk)");
        throw new InvalidDataException($"{src}: '{key}' must be an integer, got {v.ToJsonString()}");
    }

    private static int[]? IntList(JsonObject o, string key, string src)
    {
        var v = Get(o, key);
        if (v is null) return null;
        if (v is not JsonArray a) throw new InvalidDataException($"{src}: '{key}' must be a list of integers, got {v.ToJsonString()}");
        var r = new int[a.Count];
        for (int i = 0; i < r.Length; i++)
            r[i] = a[i] is JsonValue jv && jv.TryGetValue(out int n) ? n : throw new InvalidDataException($"{src}: '{key}' must be a list of integers, got {v.ToJsonString()}");
        return r;
    }

    private static double? Dbl(JsonObject o, string key, string src)
    {
        var v = Get(o, key);
        if (v is null) return null;
        return v is JsonValue jv && jv.TryGetValue(out double d) ? d : throw new InvalidDataException($"{src}: '{key}' must be a number, got {v.ToJsonString()}");
    }

    private static bool? Bool(JsonObject o, string key, string src)
    {
        var v = Get(o, key);
        if (v is null) return null;
        return v is JsonValue jv && jv.TryGetValue(out bool b) ? b : throw new InvalidDataException($"{src}: '{key}' must be true or false, got {v.ToJsonString()}");
    }
}
