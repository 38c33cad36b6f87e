using SaeSharp.Tests.IO;
using System.Text.Json.Nodes;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Models.ReferenceModelTests;

namespace SaeSharp.Tests.Models;

/// <summary>Batching, KV cache, hooks, loader errors and sampling.</summary>
public class RuntimeTests
{
    private static readonly int[] Seq0 = [15, 97, 3, 256, 42, 42, 7, 511];

    private static int[] Seq(int n, int seed)
    {
        var rng = new Rng((ulong)seed);
        return Enumerable.Range(0, n).Select(_ => rng.NextInt(512)).ToArray();
    }

    [SharedTheory(StoriesHf, StoriesBin, Gpt2, Neox)]
    [InlineData("hf")]
    [InlineData("bin")]
    [InlineData("gpt2")]
    [InlineData("neox")]
    public void PaddedBatchEqualsPerSequenceForward(string which)
    {
        var model = Model(which);
        // The GEMM may round tail rows differently; stories260K's logits reach ~20, so its bound is looser.
        float tol = which is "hf" or "bin" ? 5e-5f : 1e-5f;
        int[][] seqs = [Seq(5, 1), Seq(17, 2), Seq0, Seq(1, 3)];
        string[] names = ["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post", "ln_final.output"];
        var batch = model.RunBatch(seqs, names, padToken: 3);
        Assert.Equal(new[] { 4, 17, 512 }, batch.Logits!.Shape.ToArray());
        for (int b = 0; b < seqs.Length; b++)
        {
            int n = seqs[b].Length;
            var single = model.RunWithCache(seqs[b], names);
            var batchLogits = batch.Logits.RowSlice(b, 1).Reshape(17, 512).RowSlice(0, n);
            Close(single.Logits!, batchLogits, tol, $"sequence {b} logits");
            var resid = batch.Cache["blocks.1.hook_resid_post"].RowSlice(b, 1).Reshape(17, -1).RowSlice(0, n);
            Close(single.Cache["blocks.1.hook_resid_post"], resid, tol, $"sequence {b} resid_post");
            // pattern [batch, head, q, k]: the real [q, k] corner of each head
            var pattern = batch.Cache["blocks.0.attn.hook_pattern"];
            var one = single.Cache["blocks.0.attn.hook_pattern"];
            for (int h = 0; h < model.Config.NHeads; h++)
                for (int q = 0; q < n; q++)
                    for (int k = 0; k < n; k++)
                        Assert.Equal(one.Span[(h * n + q) * n + k], pattern.Span[((b * model.Config.NHeads + h) * 17 + q) * 17 + k], 1e-5);
        }
    }

    [SharedTheory(StoriesHf, StoriesBin, Gpt2, Neox)]
    [InlineData("hf")]
    [InlineData("bin")]
    [InlineData("gpt2")]
    [InlineData("neox")]
    public void KvCacheDecodingEqualsFullRecomputation(string which)
    {
        var model = Model(which);
        float tol = which is "hf" or "bin" ? 5e-5f : 1e-5f;
        var tokens = Seq(20, 7);
        var full = model.Forward(tokens);
        var cache = new KvCache(model.Config, 24);
        // a 6-token prefill, then chunks of 1, 3 and the rest
        var parts = new[] { tokens[..6], tokens[6..7], tokens[7..10], tokens[10..] };
        int at = 0;
        foreach (var part in parts)
        {
            var logits = model.ForwardIncremental(part, cache);
            Close(full.RowSlice(at, part.Length), logits, tol, $"positions {at}..{at + part.Length}");
            at += part.Length;
        }
        Assert.Equal(20, cache.Length);
        Assert.Throws<InvalidOperationException>(() => model.ForwardIncremental(Seq(5, 8), cache));
    }

    [SharedFact(StoriesHf)]
    public void UnknownHookNameListsValidNames()
    {
        var model = Model("hf");
        var e = Assert.Throws<ArgumentException>(() => model.RunWithCache([1, 2], ["blocks.0.hook_resid_middle"]));
        Assert.Contains("blocks.0.hook_resid_middle", e.Message);
        Assert.Contains("blocks.{0..4}.hook_resid_mid", e.Message);
        Assert.Contains("ln_final.hook_normalized", e.Message);
        Assert.Throws<ArgumentException>(() => model.Forward([1, 2], new HookSet().Edit("blocks.9.hook_resid_pre", _ => { })));
        // GPT-NeoX has a parallel residual: no resid_mid
        Assert.Throws<ArgumentException>(() => Model("neox").RunWithCache([1, 2], ["blocks.0.hook_resid_mid"]));
    }

    [SharedFact(StoriesHf)]
    public void ReplacingHooksChangeTheForward()
    {
        var model = Model("hf");
        int[] tokens = [1, 403, 407, 261, 378];
        var clean = model.RunWithCache(tokens, ["blocks.2.hook_resid_post"]);
        // identity hook: no change
        var same = model.Forward(tokens, new HookSet().Replace("blocks.2.hook_resid_post", t => t.Clone()));
        Close(clean.Logits!, same, 0, "identity hook");
        // zeroing the final normalised stream leaves every logit 0 (no unembedding bias)
        var zero = model.Forward(tokens, new HookSet().Edit("ln_final.output", t => t.Span.Clear()));
        Assert.All(zero.ToArray(), v => Assert.Equal(0f, v));
        // splicing: run the later layers on a cached resid_post from another prompt = that prompt's logits at its positions
        int[] other = [1, 410, 300, 301, 302];
        var otherRun = model.RunWithCache(other, ["blocks.4.hook_resid_pre"]);
        var spliced = model.Forward(tokens, new HookSet().Replace("blocks.4.hook_resid_pre", _ => otherRun.Cache["blocks.4.hook_resid_pre"]));
        Close(otherRun.Logits!, spliced, 1e-6f, "spliced residual");
        // the cache records the value after the hook
        var steer = new HookSet().Edit("blocks.1.hook_attn_out", t => t.Span.Fill(0.5f));
        var steered = model.RunWithCache(tokens, ["blocks.1.hook_attn_out"], hooks: steer);
        Assert.All(steered.Cache["blocks.1.hook_attn_out"].ToArray(), v => Assert.Equal(0.5f, v));
        Assert.True(MaxAbsDiff(steered.Logits!, clean.Logits!) > 1e-2f);
        Assert.Throws<InvalidOperationException>(() => model.Forward(tokens, new HookSet().Replace("hook_embed", _ => new Tensor(2, 2))));
    }

    [SharedFact(StoriesHf)]
    public void HugeAttentionScoresStayFinite()
    {
        // scores far above exp's float range (88) must still give a proper softmax: one-hot-like rows summing to 1
        var model = Model("hf");
        var hooks = new HookSet().Edit("blocks.0.attn.hook_q", t => TensorPrimitivesScale(t, 1e4f));
        var output = model.RunWithCache([1, 403, 407, 261, 378], ["blocks.0.attn.hook_pattern"], hooks: hooks);
        Assert.False(Ops.HasNonFinite(output.Logits!.Span));
        var pattern = output.Cache["blocks.0.attn.hook_pattern"];
        for (int r = 0; r < pattern.Rows; r++) Assert.Equal(1.0, pattern.Row(r).ToArray().Sum(), 1e-5);
    }

    private static void TensorPrimitivesScale(Tensor t, float factor)
    {
        var s = t.Span;
        for (int i = 0; i < s.Length; i++) s[i] *= factor;
    }

    [SharedFact(StoriesHf)]
    public void StopAtLayerRunsOnlyEarlierBlocks()
    {
        var model = Model("hf");
        int[] tokens = [1, 403, 407, 261];
        var full = model.RunWithCache(tokens, ["blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"]);
        var partial = model.RunWithCache(tokens, ["blocks.1.hook_resid_post"], stopAtLayer: 2);
        Assert.Null(partial.Logits);
        Close(full.Cache["blocks.1.hook_resid_post"], partial.Cache["blocks.1.hook_resid_post"], 0, "resid_post");
        Assert.Throws<ArgumentException>(() => model.RunWithCache(tokens, ["blocks.2.hook_resid_pre"], stopAtLayer: 2));
        // as TransformerLens: stopAtLayer = n_layers ends before the final norm
        var all = model.RunWithCache(tokens, ["blocks.4.hook_resid_post"], stopAtLayer: 5);
        Assert.Null(all.Logits);
        Close(model.RunWithCache(tokens, ["blocks.4.hook_resid_post"]).Cache["blocks.4.hook_resid_post"], all.Cache["blocks.4.hook_resid_post"], 0, "last resid");
        Assert.Throws<ArgumentException>(() => model.RunWithCache(tokens, ["ln_final.output"], stopAtLayer: 5));
        var finalOnly = model.RunWithCache(tokens, ["ln_final.output"], returnLogits: false);
        Assert.Null(finalOnly.Logits);
        Assert.Equal(new[] { 4, 64 }, finalOnly.Cache["ln_final.output"].Shape.ToArray());
        var noLogits = model.RunWithCache(tokens, ["blocks.0.attn.hook_z"], returnLogits: false);
        Assert.Null(noLogits.Logits);
        Assert.Equal(new[] { 4, 8, 8 }, noLogits.Cache["blocks.0.attn.hook_z"].Shape.ToArray());
        // grouped-query attention: hook_k has the 4 key/value heads
        var qk = model.RunWithCache(tokens, ["blocks.0.attn.hook_q", "blocks.0.attn.hook_k"], returnLogits: false);
        Assert.Equal(new[] { 4, 8, 8 }, qk.Cache["blocks.0.attn.hook_q"].Shape.ToArray());
        Assert.Equal(new[] { 4, 4, 8 }, qk.Cache["blocks.0.attn.hook_k"].Shape.ToArray());
    }

    [SharedFact(StoriesHf, StoriesBin)]
    public void HfQueryRowsArePermutedLlama2cRows()
    {
        var hf = Model("hf").Weights.Blocks[3].Q!.Weight;
        var bin = Model("bin").Weights.Blocks[3].Q!.Weight;
        for (int h = 0; h < 8; h++)
            for (int j = 0; j < 4; j++)
            {
                Assert.Equal(bin.Row(h * 8 + 2 * j).ToArray(), hf.Row(h * 8 + j).ToArray());
                Assert.Equal(bin.Row(h * 8 + 2 * j + 1).ToArray(), hf.Row(h * 8 + 4 + j).ToArray());
            }
        Assert.Equal(Model("bin").Weights.Embed.ToArray(), Model("hf").Weights.Embed.ToArray());
    }

    private static string CopyModel(string name, Action<JsonObject> editConfig)
    {
        var dir = Directory.CreateTempSubdirectory("saesharp-model-").FullName;
        var src = SharedData.Path($"models/{name}");
        File.Copy(Path.Combine(src, "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        editConfig(cfg);
        File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());
        return dir;
    }

    [SharedFact("models/tiny-random-gpt2/model.safetensors")]
    public void ConfigThatDoesNotFitTheTensorsIsNamed()
    {
        var dir = CopyModel("tiny-random-gpt2", c => c["n_inner"] = 128);
        try
        {
            var e = Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir, Compute.All));
            Assert.Contains("mlp.c_fc.weight", e.Message);
            Assert.Contains("[64, 256]", e.Message);
            Assert.Contains("expected [64, 128]", e.Message);
        }
        finally { Directory.Delete(dir, true); }

        dir = CopyModel("tiny-random-gpt2", c => c.Remove("n_embd"));
        try { Assert.Contains("'n_embd'", Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir, Compute.All)).Message); }
        finally { Directory.Delete(dir, true); }

        dir = CopyModel("tiny-random-gpt2", c => c["n_layer"] = 2);
        try { Assert.Contains("transformer.h.2.", Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir, Compute.All)).Message); }
        finally { Directory.Delete(dir, true); }

        dir = CopyModel("tiny-random-gpt2", c => c["activation_function"] = "swiglu9");
        try { Assert.Contains("activation_function", Assert.Throws<NotSupportedException>(() => HookedTransformer.Load(dir, Compute.All)).Message); }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact("models/tiny-random-gptneox/model.safetensors")]
    public void MissingTensorIsNamed()
    {
        var dir = CopyModel("tiny-random-gptneox", c => c["tie_word_embeddings"] = false);
        try
        {
            // rewrite the weights without embed_out
            using (var f = SafetensorsFile.Open(Path.Combine(SharedData.Path("models/tiny-random-gptneox"), "model.safetensors")))
            {
                var w = new SafetensorsWriter();
                foreach (var n in f.Names.Where(n => n != "embed_out.weight")) w.Add(n, f.ReadFloat32(n));
                w.Write(Path.Combine(dir, "model.safetensors"));
            }
            var e = Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir, Compute.All));
            Assert.Contains("embed_out.weight", e.Message);
            Assert.Contains("[512, 64]", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact(StoriesBin)]
    public void Llama2cUntiedClassifierIsReadFromTheEnd()
    {
        // A negative vocab_size means a classifier follows the RoPE tables; appending the embedding must change nothing.
        var path = Path.GetTempFileName();
        try
        {
            var bytes = File.ReadAllBytes(SharedData.Path(StoriesBin));
            var untied = new byte[bytes.Length + 512 * 64 * 4];
            bytes.CopyTo(untied, 0);
            Array.Copy(bytes, 28, untied, bytes.Length, 512 * 64 * 4);
            BitConverter.GetBytes(-512).CopyTo(untied, 20);
            File.WriteAllBytes(path, untied);
            var model = HookedTransformer.Load(path, Compute.All);
            Assert.False(model.Config.TiedEmbeddings);
            Assert.NotSame(model.Weights.Embed, model.Weights.Unembed);
            int[] tokens = [1, 403, 407, 261, 378];
            Close(Model("bin").Forward(tokens), model.Forward(tokens), 0, "untied copy");
        }
        finally { File.Delete(path); }
    }

    [SharedFact("models/stories260K/model.safetensors")]
    public void LlamaConfigErrorsNameTheKey()
    {
        var dir = CopyModel("stories260K", c => c["num_key_value_heads"] = 3);
        try { Assert.Contains("num_key_value_heads 3", Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir, Compute.All)).Message); }
        finally { Directory.Delete(dir, true); }
        dir = CopyModel("stories260K", c => c["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2 });
        try { Assert.Contains("rope_scaling", Assert.Throws<NotSupportedException>(() => HookedTransformer.Load(dir, Compute.All)).Message); }
        finally { Directory.Delete(dir, true); }
        dir = CopyModel("stories260K", c => c["tie_word_embeddings"] = false);
        try { Assert.Contains("lm_head.weight", Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(dir, Compute.All)).Message); }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact(Gpt2)]
    public void Gpt2WithoutTransformerPrefixLoadsTheSame()
    {
        // OpenAI-converted GPT-2 files name tensors without "transformer." and carry attn.bias mask buffers.
        var dir = CopyModel("tiny-random-gpt2", _ => { });
        try
        {
            using (var f = SafetensorsFile.Open(Path.Combine(SharedData.Path("models/tiny-random-gpt2"), "model.safetensors")))
            {
                var w = new SafetensorsWriter();
                foreach (var n in f.Names) w.Add(n["transformer.".Length..], f.ReadFloat32(n));
                w.Add("h.0.attn.bias", new Tensor(1, 1, 8, 8));
                w.Write(Path.Combine(dir, "model.safetensors"));
            }
            var model = HookedTransformer.Load(dir, Compute.All);
            Close(Model("gpt2").Forward(Seq0), model.Forward(Seq0), 0, "unprefixed GPT-2");
        }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact(StoriesBin)]
    public void TruncatedLlama2cFileIsRejected()
    {
        var path = Path.GetTempFileName();
        try
        {
            var bytes = File.ReadAllBytes(SharedData.Path(StoriesBin));
            File.WriteAllBytes(path, bytes[..^4]);
            var e = Assert.Throws<InvalidDataException>(() => HookedTransformer.Load(path, Compute.All));
            Assert.Contains("1056536 bytes", e.Message);
            Assert.Contains("implies 1056540", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void HalfPrecisionWeightsLoadAsFloat32()
    {
        // A 1-layer Llama written as BF16 must give the same logits as its F32 copy rounded the same way.
        var dir = Directory.CreateTempSubdirectory("saesharp-bf16-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), ModelLoaderTests.TinyLlamaConfig);
            var rng = new Rng(5);
            var shapes = ModelLoaderTests.TinyLlamaShapes;
            var w16 = new SafetensorsWriter();
            var w32 = new SafetensorsWriter();
            foreach (var (name, shape) in shapes)
            {
                var t = new Tensor(shape);
                rng.FillNormal(t.Span, 0, 0.5f);
                w16.Add(name, t, DType.BF16);
                var rounded = t.Clone();
                for (int i = 0; i < rounded.Length; i++) rounded.Span[i] = BitConverter.UInt32BitsToSingle((uint)SafetensorsWriter.FloatToBFloat16(t.Span[i]) << 16);
                w32.Add(name, rounded);
            }
            w16.Write(Path.Combine(dir, "model.safetensors"));
            var m16 = HookedTransformer.Load(dir, Compute.All);
            w32.Write(Path.Combine(dir, "model.safetensors"));
            var m32 = HookedTransformer.Load(dir, Compute.All);
            int[] tokens = [1, 5, 9, 15, 0];
            Close(m32.Forward(tokens), m16.Forward(tokens), 0, "bf16 vs rounded f32");
            Assert.Equal(1, m16.Config.NKvHeads);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ErfMatchesKnownValues()
    {
        // values from tables of the error function
        Assert.Equal(0.0, Kernels.Erf(0), 1e-15);
        Assert.Equal(0.5204998778130465, Kernels.Erf(0.5), 1e-14);
        Assert.Equal(0.8427007929497149, Kernels.Erf(1), 1e-14);
        Assert.Equal(-0.9953222650189527, Kernels.Erf(-2), 1e-14);
        Assert.Equal(0.9999779095030014, Kernels.Erf(3), 1e-14);
        Assert.Equal(0.9999999845827421, Kernels.Erf(4), 1e-14);
        Assert.Equal(-1.0, Kernels.Erf(-7), 1e-15);
    }

    [Fact]
    public void SamplerHonoursGreedyTopKAndTopP()
    {
        float[] logits = [1f, 3f, 2f, 0f];
        Assert.Equal(1, Sampler.Sample(logits, new SamplingOptions(), null));
        var rng = new Rng(42);
        var counts = new int[4];
        for (int i = 0; i < 4000; i++) counts[Sampler.Sample(logits, new SamplingOptions { Temperature = 1, TopK = 2 }, rng)]++;
        Assert.Equal(0, counts[0] + counts[3]);
        // p(1) / p(2) = e under top-k 2: 0.731
        Assert.InRange(counts[1] / 4000.0, 0.70, 0.76);
        // probs 0.644, 0.237, 0.087, 0.032: top-p 0.8 keeps ids 1 and 2 only
        Array.Clear(counts);
        for (int i = 0; i < 4000; i++) counts[Sampler.Sample(logits, new SamplingOptions { Temperature = 1, TopP = 0.8f }, rng)]++;
        Assert.Equal(0, counts[0] + counts[3]);
        Assert.True(counts[2] > 0);
        // top-p below the largest probability is greedy
        for (int i = 0; i < 100; i++) Assert.Equal(1, Sampler.Sample(logits, new SamplingOptions { Temperature = 1, TopP = 0.5f }, rng));
        // a very high temperature approaches uniform over all four
        Array.Clear(counts);
        for (int i = 0; i < 4000; i++) counts[Sampler.Sample(logits, new SamplingOptions { Temperature = 1000 }, rng)]++;
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
        Assert.Throws<ArgumentException>(() => Sampler.Sample(logits, new SamplingOptions { TopP = 0 }, rng));
    }

    [SharedFact(StoriesHf)]
    public void SeededSamplingIsReproducibleAndStopsAtStopToken()
    {
        var model = Model("hf");
        var opts = new GenerationOptions { MaxNewTokens = 40, Sampling = new SamplingOptions { Temperature = 1, TopP = 0.9f } };
        var a = model.Generate([1, 403], opts, new Rng(7));
        var b = model.Generate([1, 403], opts, new Rng(7));
        Assert.Equal(a, b);
        Assert.Equal(40, a.Length);
        var c = model.Generate([1, 403], opts, new Rng(8));
        Assert.NotEqual(a, c);
        // stop at the 5th token of the seeded run: output ends there, inclusive
        var stopped = model.Generate([1, 403], opts with { StopToken = a[4] }, new Rng(7));
        int first = Array.IndexOf(a, a[4]);
        Assert.Equal(a[..(first + 1)], stopped);
    }

    [Fact]
    public void RotaryModelsRefusePositionsBeyondTheirContext()
    {
        // GPT-2 refuses past n_positions (learned positions); Llama and GPT-NeoX ran on silently past max_position_embeddings.
        using var dir = new TempDir();
        ModelLoaderTests.WriteTinyLlama(dir.Root);
        var m = HookedTransformer.Load(dir.Root, Compute.All);
        Assert.Equal(32, m.Config.MaxPositions);
        m.Forward(Enumerable.Range(0, 32).Select(i => i % 16).ToArray());
        var e = Assert.Throws<ArgumentException>(() => m.Forward(Enumerable.Range(0, 33).Select(i => i % 16).ToArray()));
        Assert.Contains("32", e.Message);
        Assert.Throws<ArgumentException>(() => m.RunBatch([new int[40], new int[3]]));
        Assert.Throws<ArgumentException>(() => m.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 30 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvCache(m.Config, 33));
        Assert.Equal(29, m.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 29 }).Length);
    }
}
