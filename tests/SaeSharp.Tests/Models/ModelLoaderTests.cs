using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Models;

/// <summary>Hugging Face folders whose weights cannot be what config.json describes: refused, naming folder, file and tensor.</summary>
public class ModelLoaderTests
{
    internal const string TinyLlamaConfig = """
        {"model_type":"llama","hidden_size":8,"intermediate_size":12,"num_hidden_layers":1,"num_attention_heads":2,
         "num_key_value_heads":1,"vocab_size":16,"max_position_embeddings":32,"rms_norm_eps":1e-5,"tie_word_embeddings":false,
         "bos_token_id":1,"eos_token_id":2}
        """;

    internal static readonly Dictionary<string, int[]> TinyLlamaShapes = new()
    {
        ["model.embed_tokens.weight"] = [16, 8], ["lm_head.weight"] = [16, 8], ["model.norm.weight"] = [8],
        ["model.layers.0.input_layernorm.weight"] = [8], ["model.layers.0.post_attention_layernorm.weight"] = [8],
        ["model.layers.0.self_attn.q_proj.weight"] = [8, 8], ["model.layers.0.self_attn.k_proj.weight"] = [4, 8],
        ["model.layers.0.self_attn.v_proj.weight"] = [4, 8], ["model.layers.0.self_attn.o_proj.weight"] = [8, 8],
        ["model.layers.0.mlp.gate_proj.weight"] = [12, 8], ["model.layers.0.mlp.up_proj.weight"] = [12, 8],
        ["model.layers.0.mlp.down_proj.weight"] = [8, 12],
    };

    /// <summary>Writes a random 1-layer Llama (8 wide, 16 tokens, 32 positions) to <paramref name="dir"/>; <paramref name="edit"/> may change the writer's inputs.</summary>
    internal static void WriteTinyLlama(string dir, Action<Dictionary<string, Tensor>>? edit = null, Func<string, DType>? dtype = null)
    {
        File.WriteAllText(Path.Combine(dir, "config.json"), TinyLlamaConfig);
        var rng = new Rng(5);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (name, shape) in TinyLlamaShapes)
        {
            var t = new Tensor(shape);
            rng.FillNormal(t.Span, 0, 0.5f);
            tensors[name] = t;
        }
        edit?.Invoke(tensors);
        var w = new SafetensorsWriter();
        foreach (var (name, t) in tensors)
        {
            var dt = dtype?.Invoke(name) ?? DType.F32;
            if (dt.IsFloat()) w.Add(name, t, dt);
            else w.AddInt32(name, t.ToArray().Select(v => (int)MathF.Round(v * 10)).ToArray(), t.Shape.ToArray());
        }
        w.Write(Path.Combine(dir, "model.safetensors"));
    }

    [Fact]
    public void TheTinyModelLoads()
    {
        using var dir = new TempDir();
        WriteTinyLlama(dir.Root);
        var m = HookedTransformer.Load(dir.Root, Compute.All);
        Assert.True(m.Forward([1, 3, 5]).ToArray().All(float.IsFinite));
    }

    [Fact]
    public void MissingTensorNamesTheModelFolder()
    {
        using var dir = new TempDir();
        WriteTinyLlama(dir.Root, t => t.Remove("model.layers.0.mlp.up_proj.weight"));
        var e = Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir.Root, Compute.All));
        Assert.Contains(dir.Root, e.Message);
        Assert.Contains("model.layers.0.mlp.up_proj.weight", e.Message);
        Assert.Contains("[12, 8]", e.Message);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteWeightsAreRefused(float bad)
    {
        using var dir = new TempDir();
        WriteTinyLlama(dir.Root, t => t["model.layers.0.self_attn.o_proj.weight"][2, 5] = bad);
        var e = Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir.Root, Compute.All));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("model.layers.0.self_attn.o_proj.weight", e.Message);
        Assert.Contains("[2, 5]", e.Message);
    }

    [Fact]
    public void IntegerWeightsAreRefused()
    {
        // An I32 embedding used to be converted to float as integers and run.
        using var dir = new TempDir();
        WriteTinyLlama(dir.Root, dtype: n => n == "model.embed_tokens.weight" ? DType.I32 : DType.F32);
        var e = Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir.Root, Compute.All));
        Assert.Contains("model.embed_tokens.weight", e.Message);
        Assert.Contains("I32", e.Message);
    }

    [SharedFact("models/stories260K/stories260K.bin")]
    public void NonFiniteLlama2cWeightsAreRefused()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(SharedData.Path("models/stories260K/stories260K.bin"));
        // The first float after the header is tok_embeddings[0, 0].
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, 28 + 4 * 70);
        string path = dir.File("nan.bin");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(path, Compute.All));
        Assert.Contains(path, e.Message);
        Assert.Contains("tok_embeddings", e.Message);
        Assert.Contains("[1, 6]", e.Message);
    }
}
