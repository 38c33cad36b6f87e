using System.Text.Json.Nodes;
using SaeSharp.IO;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

public sealed class SaeFilesTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saesharp-saes-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    [Theory]
    [InlineData("standard")]
    [InlineData("topk")]
    [InlineData("batchtopk")]
    [InlineData("jumprelu")]
    [InlineData("gated")]
    [InlineData("matryoshka_batchtopk")]
    [InlineData("transcoder")]
    [InlineData("skip_transcoder")]
    [InlineData("jumprelu_transcoder")]
    [InlineData("jumprelu_skip_transcoder")]
    public void SaveLoadRoundTripsBitExactly(string arch)
    {
        bool transcoder = arch.Contains("transcoder");
        var cfg = new SaeConfig
        {
            Architecture = arch, DIn = 5, DSae = 9, K = arch.Contains("topk") ? 2 : 0,
            DOut = transcoder ? 3 : 0, ApplyBDecToInput = !transcoder,
            MatryoshkaWidths = arch == "matryoshka_batchtopk" ? [2, 4, 9] : null,
            Metadata = new JsonObject { ["model_name"] = "gpt2", ["hook_name"] = "blocks.3.hook_resid_pre" },
        };
        var sae = RandomSae(cfg, 21);
        if (sae is JumpReluSae j) new Rng(3).FillUniform(j.Threshold.Span, 0, 1);
        if (sae is TopKSae t) t.TopKThreshold = 0.123456789;
        var density = new float[9];
        new Rng(4).FillUniform(density, -5, 0);
        SaeFiles.Save(sae, _dir, density);
        var back = SaeFiles.Load(_dir, Compute.All);
        Assert.Equal(arch, back.Config.Architecture);
        Assert.Equal(cfg with { Metadata = back.Config.Metadata, MatryoshkaWidths = back.Config.MatryoshkaWidths }, back.Config);
        Assert.Equal(cfg.MatryoshkaWidths, back.Config.MatryoshkaWidths);
        Assert.Equal("blocks.3.hook_resid_pre", (string?)back.Config.Metadata["hook_name"]);
        Assert.Equal(sae.Params.Names, back.Params.Names);
        foreach (var (n, p) in sae.Params) Assert.Equal(p.ToArray(), back.Params[n].ToArray());
        // Only batchtopk keeps a threshold (its inference rule); plain topk has none to save.
        if (sae is TopKSae { IsBatch: true } t1) Assert.Equal((float)t1.TopKThreshold, (float)((TopKSae)back).TopKThreshold);
        Assert.Equal(density, SaeFiles.LoadSparsity(_dir, 9));
        Assert.False(File.Exists(Path.Combine(_dir, SaeFiles.WeightsFile + ".tmp")));
    }

    private void WriteCfg(string json)
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, SaeFiles.ConfigFile), json);
    }

    /// <summary>A transcoder cfg.json as SAELens versions write it: the output hook top-level (older) or in metadata (6.x); both load, into metadata.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TranscoderOutputHooksLoadFromTopLevelOrMetadata(bool topLevel)
    {
        string hooks = topLevel
            ? "\"hook_name_out\": \"blocks.1.hook_mlp_out\", \"hook_layer_out\": 1, \"hook_head_index_out\": null, \"metadata\": {\"hook_name\": \"blocks.1.ln2.hook_normalized\"}"
            : "\"metadata\": {\"hook_name\": \"blocks.1.ln2.hook_normalized\", \"hook_name_out\": \"blocks.1.hook_mlp_out\", \"hook_head_index_out\": null}";
        var cfg = SaeFiles.ConfigFromJson($$"""{"architecture": "jumprelu_transcoder", "d_in": 4, "d_sae": 8, "d_out": 3, "apply_b_dec_to_input": false, {{hooks}}}""", "cfg.json");
        Assert.Equal(3, cfg.DOut);
        Assert.Equal("blocks.1.hook_mlp_out", (string?)cfg.Metadata["hook_name_out"]);
        Assert.Equal("blocks.1.ln2.hook_normalized", (string?)cfg.Metadata["hook_name"]);
    }

    [Fact]
    public void LegacyConfigIsConverted()
    {
        var cfg = SaeFiles.ConfigFromJson("""
            {"d_in": 4, "d_sae": 8, "dtype": "torch.float32", "device": "cpu", "hook_point": "blocks.0.hook_resid_pre",
             "hook_point_layer": 0, "model_name": "gpt2", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3},
             "apply_b_dec_to_input": false, "normalize_activations": "none", "context_size": 128}
            """, "test");
        Assert.Equal("topk", cfg.Architecture);
        Assert.Equal(3, cfg.K);
        Assert.Equal("float32", cfg.Dtype);
        Assert.False(cfg.ApplyBDecToInput);
        Assert.Equal("blocks.0.hook_resid_pre", (string?)cfg.Metadata["hook_name"]);
        Assert.Equal("gpt2", (string?)cfg.Metadata["model_name"]);
    }

    [Theory]
    [InlineData("""{"architecture": "wavelet", "d_in": 4, "d_sae": 8}""", "architecture")]
    [InlineData("""{"architecture": "standard", "d_in": 4, "d_sae": 8, "l1_coefficent": 1}""", "l1_coefficent")]
    [InlineData("""{"architecture": "topk", "d_in": 4, "d_sae": 8}""", "'k'")]
    [InlineData("""{"architecture": "standard", "d_in": "4", "d_sae": 8}""", "d_in")]
    [InlineData("""{"architecture": "standard", "d_in": 4, "d_sae": 8, "normalize_activations": "zscore"}""", "normalize_activations")]
    [InlineData("""{"architecture": "matryoshka_batchtopk", "d_in": 4, "d_sae": 8, "k": 2}""", "matryoshka_widths")]
    [InlineData("""{"architecture": "matryoshka_batchtopk", "d_in": 4, "d_sae": 8, "k": 2, "matryoshka_widths": [2, 6]}""", "matryoshka_widths")]
    [InlineData("""{"architecture": "matryoshka_batchtopk", "d_in": 4, "d_sae": 8, "k": 2, "matryoshka_widths": [4, 2, 8]}""", "matryoshka_widths")]
    [InlineData("""{"architecture": "matryoshka_batchtopk", "d_in": 4, "d_sae": 8, "k": 2, "matryoshka_widths": [0, 8]}""", "matryoshka_widths")]
    [InlineData("""{"architecture": "matryoshka_batchtopk", "d_in": 4, "d_sae": 8, "k": 2, "matryoshka_widths": "8"}""", "matryoshka_widths")]
    [InlineData("""{"architecture": "matryoshka_batchtopk", "d_in": 4, "d_sae": 8, "matryoshka_widths": [8]}""", "'k'")]
    [InlineData("""{"architecture": "transcoder", "d_in": 4, "d_sae": 8, "apply_b_dec_to_input": false}""", "d_out")]
    [InlineData("""{"architecture": "skip_transcoder", "d_in": 4, "d_sae": 8, "d_out": 3}""", "apply_b_dec_to_input")]
    [InlineData("""{"architecture": "transcoder", "d_in": 4, "d_sae": 8, "d_out": 3, "apply_b_dec_to_input": false, "normalize_activations": "layer_norm"}""", "normalize_activations")]
    public void ConfigErrorsNameTheField(string json, string field)
    {
        var e = Assert.Throws<InvalidDataException>(() => SaeFiles.ConfigFromJson(json, "cfg.json"));
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void WeightShapeDisagreeingWithConfigIsAnError()
    {
        var sae = RandomSae(new SaeConfig { Architecture = "standard", DIn = 4, DSae = 8 }, 1);
        SaeFiles.Save(sae, _dir);
        WriteCfg("""{"architecture": "standard", "d_in": 4, "d_sae": 6}""");
        var e = Assert.Throws<InvalidDataException>(() => SaeFiles.Load(_dir, Compute.All));
        Assert.Contains("W_enc", e.Message);
        Assert.Contains("[4, 6]", e.Message);
    }

    [Fact]
    public void LogThresholdIsAccepted()
    {
        WriteCfg("""{"architecture": "jumprelu", "d_in": 2, "d_sae": 3}""");
        new SafetensorsWriter()
            .Add("W_enc", new Tensor(2, 3)).Add("b_enc", new Tensor(3)).Add("W_dec", new Tensor(3, 2)).Add("b_dec", new Tensor(2))
            .Add("log_threshold", Tensor.FromArray([0f, MathF.Log(2), -1f], 3))
            .Write(Path.Combine(_dir, SaeFiles.WeightsFile));
        var sae = (JumpReluSae)SaeFiles.Load(_dir, Compute.All);
        Assert.Equal(1f, sae.Threshold[0]);
        Assert.Equal(2f, sae.Threshold[1], 6);
        Assert.Equal(MathF.Exp(-1), sae.Threshold[2]);
    }

    [Fact]
    public void SparsifyFolderImportsAsTopK()
    {
        var rng = new Rng(9);
        var enc = new Tensor(7, 4); rng.FillNormal(enc.Span);
        var bias = new Tensor(7); rng.FillNormal(bias.Span);
        var wDec = new Tensor(7, 4); rng.FillNormal(wDec.Span);
        var bDec = new Tensor(4); rng.FillNormal(bDec.Span);
        WriteCfg("""{"expansion_factor": 2, "normalize_decoder": true, "num_latents": 7, "k": 2, "multi_topk": false, "d_in": 4}""");
        new SafetensorsWriter().Add("encoder.weight", enc).Add("encoder.bias", bias).Add("W_dec", wDec).Add("b_dec", bDec)
            .Write(Path.Combine(_dir, SaeFiles.SparsifyWeightsFile));
        var sae = SaeFiles.ImportSparsify(_dir, Compute.All);
        Assert.Equal("topk", sae.Config.Architecture);
        Assert.Equal(2, sae.Config.K);
        var x = RandomX(3, 4, 10);
        // sparsify: relu((x − b_dec)·encoder.weightᵀ + bias), top-2, decode + b_dec — computed directly here.
        var f = sae.Encode(x);
        for (int r = 0; r < 3; r++)
        {
            var pre = new double[7];
            for (int j = 0; j < 7; j++)
            {
                double s = bias[j];
                for (int i = 0; i < 4; i++) s += (x[r, i] - bDec[i]) * enc[j, i];
                pre[j] = Math.Max(0, s);
            }
            var top = Enumerable.Range(0, 7).OrderByDescending(j => pre[j]).Take(2).ToHashSet();
            for (int j = 0; j < 7; j++) Assert.Equal(top.Contains(j) ? pre[j] : 0, f[r, j], 5);
        }
    }

    [Theory]
    [InlineData("batchtopk", false)]
    [InlineData("matryoshka_batchtopk", false)]
    [InlineData("matryoshka_batchtopk", true)]
    public void BatchTopKKindsExportAsJumpReluWithIdenticalOutputs(string arch, bool rescale)
    {
        var cfg = new SaeConfig
        {
            Architecture = arch, DIn = 6, DSae = 12, K = 3, RescaleActsByDecoderNorm = rescale,
            MatryoshkaWidths = arch == "matryoshka_batchtopk" ? [3, 7, 12] : null,
        };
        var sae = (TopKSae)RandomSae(cfg, 41);
        // Train-mode forwards set the threshold; then inference on fresh inputs.
        for (int i = 0; i < 20; i++) sae.Forward(RandomX(16, 6, 100 + (ulong)i), new SaeLossOptions());
        Assert.True(sae.TopKThreshold > 0);
        SaeFiles.Save(sae.ToJumpRelu(), _dir);
        var j = (JumpReluSae)SaeFiles.Load(_dir, Compute.All);
        Assert.Equal("jumprelu", j.Config.Architecture);
        Assert.Null(j.Config.MatryoshkaWidths);
        var x = RandomX(32, 6, 999);
        var a = sae.Forward(x); var b = j.Forward(x);
        var fa = a.DenseFeatures().ToArray(); var fb = b.DenseFeatures().ToArray();
        int active = fa.Count(v => v != 0);
        Assert.True(active > 0 && active < fa.Length, "the threshold should keep some latents and drop others");
        for (int i = 0; i < fa.Length; i++)
        {
            // Rescaled exports fold the decoder norms into the encoder: codes differ by that factor, outputs agree.
            Assert.Equal(fa[i] != 0, fb[i] != 0);
            if (!rescale) Assert.Equal(fa[i], fb[i], 5);
        }
        var oa = a.Output.ToArray(); var ob = b.Output.ToArray();
        for (int i = 0; i < oa.Length; i++) Assert.Equal(oa[i], ob[i], 4);
    }

    [Theory]
    [InlineData("matryoshka_batchtopk", "matryoshka_widths: [2, 4, 9]")]
    [InlineData("transcoder", "d_out: 3")]
    [InlineData("skip_transcoder", "W_skip     [3, 5]")]
    public void SaeInfoPrintsTheNewArchitectures(string arch, string expected)
    {
        bool transcoder = arch.Contains("transcoder");
        var cfg = new SaeConfig
        {
            Architecture = arch, DIn = 5, DSae = 9, K = transcoder ? 0 : 2, DOut = transcoder ? 3 : 0, ApplyBDecToInput = !transcoder,
            MatryoshkaWidths = transcoder ? null : [2, 4, 9],
        };
        SaeFiles.Save(RandomSae(cfg, 5), _dir, new float[9]);
        var o = new StringWriter();
        SaeSharp.Cli.Commands.SaeCommands.Print(o, SaeFiles.Load(_dir, Compute.All), SaeFiles.LoadSparsity(_dir, 9));
        string text = o.ToString();
        Assert.Contains($"architecture: {arch}", text);
        Assert.Contains(expected, text);
        Assert.Contains("encoder/decoder cosine per latent", text);
    }

    [Fact]
    public void MissingFilesAreClearErrors()
    {
        Directory.CreateDirectory(_dir);
        Assert.Contains("cfg.json", Assert.Throws<FileNotFoundException>(() => SaeFiles.Load(_dir, Compute.All)).Message);
        WriteCfg("""{"architecture": "standard", "d_in": 4, "d_sae": 8}""");
        Assert.Contains(SaeFiles.WeightsFile, Assert.Throws<FileNotFoundException>(() => SaeFiles.Load(_dir, Compute.All)).Message);
    }
}
