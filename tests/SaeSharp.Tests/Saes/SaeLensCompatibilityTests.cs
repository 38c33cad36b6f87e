using SaeSharp.Tensors;
using System.Text.Json.Nodes;
using SaeSharp.Saes;
using SaeSharp.Tests.Cli;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Saes.GradientCheck;

namespace SaeSharp.Tests.Saes;

/// <summary>cfg.json and sparsify folders as SAELens 6.x and sparsify read and write them.</summary>
public class SaeLensCompatibilityTests
{
    private static JsonObject SavedCfg(string dir) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, SaeFiles.ConfigFile)))!;

    [Fact]
    public void SavedCfgDeclaresASaeLens6Version()
    {
        // Without metadata.sae_lens_version SAELens (handle_config_defaulting) treats a cfg as pre-6.0 and rebuilds its
        // metadata from top-level keys: hook_name, model_name and context_size were lost and prepend_bos became true.
        using var dir = new TempDir();
        var cfg = new SaeConfig
        {
            Architecture = "topk", DIn = 4, DSae = 8, K = 2,
            Metadata = new JsonObject { ["model_name"] = "stories260K", ["hook_name"] = "blocks.2.hook_resid_post", ["context_size"] = 128, ["prepend_bos"] = false },
        };
        SaeFiles.Save(RandomSae(cfg, 3), dir.Root);
        var meta = SavedCfg(dir.Root)["metadata"]!.AsObject();
        var version = Version.Parse(meta["sae_lens_version"]!.GetValue<string>());
        Assert.True(version >= new Version(6, 0, 0), $"sae_lens_version {version}");
        Assert.NotNull(meta["sae_lens_training_version"]);
        Assert.Equal("blocks.2.hook_resid_post", meta["hook_name"]!.GetValue<string>());
        Assert.False(meta["prepend_bos"]!.GetValue<bool>());

        // A pre-6.0 cfg is converted on load and saved in the 6.x layout, so it must say so too.
        File.WriteAllText(Path.Combine(dir.Root, SaeFiles.ConfigFile), """
            {"architecture": "standard", "d_in": 4, "d_sae": 8, "hook_point": "blocks.0.hook_resid_pre", "model_name": "gpt2", "sae_lens_training_version": "3.1.0"}
            """);
        var legacy = SaeFiles.Load(dir.Root, Compute.All);
        using var again = new TempDir();
        SaeFiles.Save(legacy, again.Root);
        var v = Version.Parse(SavedCfg(again.Root)["metadata"]!["sae_lens_version"]!.GetValue<string>());
        Assert.True(v >= new Version(6, 0, 0));
    }

    public static TheoryData<string, string[], string[]> TrainingKeys => new()
    {
        { "standard", ["--set", "l1_warm_up_steps=3", "--l1-coefficient", "0.25"], ["l1_coefficient=0.25", "lp_norm=1", "l1_warm_up_steps=3", "decoder_init_norm=0.1"] },
        { "jumprelu", ["--l1-coefficient", "0.5"], ["l0_coefficient=0.5", "l0_warm_up_steps=0", "jumprelu_sparsity_loss_mode=step", "jumprelu_tanh_scale=4", "decoder_init_norm=0.1"] },
        { "topk", ["--k", "2", "--set", "aux_loss_coefficient=0.5"], ["k=2", "aux_loss_coefficient=0.5", "decoder_init_norm=0.1"] },
        { "batchtopk", ["--k", "2"], ["k=2", "aux_loss_coefficient=1", "topk_threshold_lr=0.01"] },
        { "gated", ["--l1-coefficient", "0.75"], ["l1_coefficient=0.75", "l1_warm_up_steps=0"] },
    };

    [Theory, MemberData(nameof(TrainingKeys))]
    public void TrainedSaesCarryTheTrainingKeysSaeLensWrites(string arch, string[] flags, string[] expected)
    {
        using var dir = new TempDir();
        string acts = TrainCommandTests.WriteActivations(dir.Root, rows: 128);
        string outDir = dir.File("run");
        var r = CliRunner.Run(["train", "--activations", acts, "--architecture", arch, "--d-sae", "16", "--steps", "3", "--batch-size", "32",
            "--out", outDir, .. flags]);
        Assert.True(r.Code == 0, r.Err);
        var cfg = SavedCfg(outDir);
        foreach (var kv in expected)
        {
            var (key, value) = (kv[..kv.IndexOf('=')], kv[(kv.IndexOf('=') + 1)..]);
            Assert.True(cfg.ContainsKey(key), $"cfg.json lacks '{key}'");
            Assert.Equal(value, cfg[key]!.ToJsonString().Trim('"'));
        }
        Assert.NotNull(SaeFiles.Load(outDir, Compute.All));
    }

    [Fact]
    public void EveryArchitecturesTrainingKeysNameASetting()
    {
        foreach (var arch in SaeRegistry.Architectures)
        {
            var keys = SaeSharp.Runs.SaeLensTrainingKeys.From(new SaeSharp.Runs.TrainSettings { Architecture = arch.Name });
            Assert.Equal(arch.TrainingKeys.Count + 1, keys.Count); // decoder_init_norm is every architecture's
            Assert.True(keys.ContainsKey("decoder_init_norm"), arch.Name);
        }
    }

    [Fact]
    public void BatchTopKKAsAFloatLoads()
    {
        // SAELens 6.11+ types batchtopk k as a float and writes k=16.0.
        var cfg = SaeFiles.ConfigFromJson("""{"architecture": "batchtopk", "d_in": 4, "d_sae": 32, "k": 16.0}""", "cfg.json");
        Assert.Equal(16, cfg.K);
        var e = Assert.Throws<InvalidDataException>(() => SaeFiles.ConfigFromJson("""{"architecture": "batchtopk", "d_in": 4, "d_sae": 32, "k": 16.5}""", "cfg.json"));
        Assert.Contains("'k'", e.Message);
        Assert.Contains("16.5", e.Message);
        // topk's k stays an integer in SAELens; an integral float is read all the same.
        Assert.Equal(3, SaeFiles.ConfigFromJson("""{"architecture": "topk", "d_in": 4, "d_sae": 32, "k": 3.0}""", "cfg.json").K);
    }

    [Theory]
    [InlineData("matching_pursuit", "\"residual_threshold\": 0.01")]
    [InlineData("temporal", "\"n_heads\": 2")]
    public void UnsupportedSaeLensArchitecturesAreNamed(string arch, string extra)
    {
        var e = Assert.Throws<NotSupportedException>(() =>
            SaeFiles.ConfigFromJson($$"""{"architecture": "{{arch}}", "d_in": 4, "d_sae": 8, {{extra}}}""", "cfg.json"));
        Assert.Contains($"'{arch}'", e.Message);
        Assert.Contains("SAELens", e.Message);
        Assert.DoesNotContain("unknown cfg key", e.Message);
    }

    [Theory]
    [InlineData("\"activation\": \"groupmax\"", "groupmax")]
    [InlineData("\"transcode\": true", "transcode")]
    public void SparsifyVariantsThatWouldLoadAsPlainTopKAreRefused(string extra, string named)
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Root, SaeFiles.ConfigFile), $$"""{"k": 2, "num_latents": 8, "d_in": 4, {{extra}}}""");
        new SaeSharp.IO.SafetensorsWriter()
            .Add("encoder.weight", new SaeSharp.Tensors.Tensor(8, 4)).Add("encoder.bias", new SaeSharp.Tensors.Tensor(8))
            .Add("W_dec", new SaeSharp.Tensors.Tensor(8, 4)).Add("b_dec", new SaeSharp.Tensors.Tensor(4))
            .Write(Path.Combine(dir.Root, SaeFiles.SparsifyWeightsFile));
        var e = Assert.Throws<NotSupportedException>(() => SaeFiles.ImportSparsify(dir.Root, Compute.All));
        Assert.Contains(named, e.Message);
        Assert.Contains(Path.Combine(dir.Root, SaeFiles.ConfigFile), e.Message);
        // activation "topk" and transcode false are what the import reproduces.
        File.WriteAllText(Path.Combine(dir.Root, SaeFiles.ConfigFile), """{"k": 2, "num_latents": 8, "d_in": 4, "activation": "topk", "transcode": false}""");
        Assert.Equal("topk", SaeFiles.ImportSparsify(dir.Root, Compute.All).Config.Architecture);
        File.WriteAllText(Path.Combine(dir.Root, SaeFiles.ConfigFile), "{\"k\": 2,");
        Assert.Contains(SaeFiles.ConfigFile, Assert.Throws<InvalidDataException>(() => SaeFiles.ImportSparsify(dir.Root, Compute.All)).Message);
    }
}
