using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SaeSharp.Analysis;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Analysis.SteeringHooksTests;
using static SaeSharp.Tests.Evals.EvalFixtures;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Analysis;

/// <summary>drrik's SAESteering operations: names, defaults, labels, find_steering_features by hand, directions, the saved files and the errors.</summary>
public class SaeSteeringTests
{
    private const string Hook = "blocks.2.hook_resid_post";
    private const string Prompt = "Once upon a time, there was a little girl";

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void GenerateWithoutFeaturesIsTheModelsOwnSampleAndTheTextStartsWithThePrompt()
    {
        var m = LoadStories();
        var s = Steering(m, Random("topk", 64, Metadata(Hook), dSae: 64));
        string text = s.Generate(Prompt, maxNewTokens: 20);
        Assert.StartsWith(Prompt, text);
        // drrik's defaults: temperature 0.8, top-p 0.9, stop at EOS, every call from the same seed.
        var prompt = s.EncodePrompt(Prompt);
        var options = new SaeSharp.Models.GenerationOptions
        {
            MaxNewTokens = 20, Sampling = new SaeSharp.Models.SamplingOptions { Temperature = 0.8f, TopP = 0.9f }, StopToken = m.Config.EosTokenId,
        };
        var own = m.Generate(prompt, options, new Rng(s.Seed));
        Assert.Equal(s.Decode([.. prompt, .. own]), text);
        Assert.Equal(text, s.Generate(Prompt, maxNewTokens: 20));
        Assert.NotEqual(text, s.Generate(Prompt, featureIdx: 7, strength: 6, maxNewTokens: 20));
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void CompareSteeringLabelsRunsAsDrrikAndDefaultsToItsStrengths()
    {
        var m = LoadStories();
        var s = Steering(m, Random("topk", 64, Metadata(Hook), dSae: 64));
        var results = s.CompareSteering(Prompt, featureIdx: 7, maxNewTokens: 12);
        Assert.Equal(["baseline", "strength_1.0", "strength_2.0", "strength_3.0", "strength_5.0"], results.Keys);
        Assert.Equal(s.Generate(Prompt, maxNewTokens: 12), results["baseline"]);
        Assert.Equal(s.Generate(Prompt, featureIdx: 7, strength: 3, maxNewTokens: 12), results["strength_3.0"]);
        var custom = s.CompareSteering(Prompt, 7, [-2.5, 0, 0.25], maxNewTokens: 4);
        Assert.Equal(["strength_-2.5", "baseline", "strength_0.25"], custom.Keys);
    }

    [Theory]
    [InlineData(1.0, "1.0")]
    [InlineData(2.5, "2.5")]
    [InlineData(-2.0, "-2.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(1e-5, "1e-05")]
    [InlineData(1e20, "1e+20")]
    [InlineData(123.0, "123.0")]
    public void StrengthsPrintAsPythonFloats(double value, string expected) => Assert.Equal(expected, SaeSteering.PythonFloat(value));

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void FindSteeringFeaturesRanksMeanActivationsAsComputedByHand()
    {
        var m = LoadStories();
        // f = [ReLU(x), ReLU(−x)] with decoder rows of norm 1 (Identity) except latent 1, scaled to norm 2.
        var sae = Identity(64, Metadata(Hook));
        for (int j = 0; j < 64; j++) sae.WDec[1, j] *= 2;
        var s = Steering(m, sae);
        var x = new Tensor(3, 64);
        x[0, 0] = 3; x[1, 0] = 1; x[2, 0] = 2;   // latent 0: mean 2
        x[0, 1] = 6;                             // latent 1: mean 2 (norm 2: normalized 1)
        x[1, 2] = -1.5f;                         // latent 66 (= 64 + 2): mean 0.5
        x[2, 3] = 0.3f;                          // latent 3: mean 0.1
        var top = s.FindSteeringFeatures("hand", x, topK: 3, minActivation: 0.2);
        Assert.Equal([0, 1, 66], top.Select(f => f.FeatureIdx));       // ties to the lower index
        Assert.Equal(2, top[0].Activation, 6);
        Assert.Equal(2 / (1 + 1e-8), top[0].NormalizedActivation, 6);
        Assert.Equal(1, top[0].DecoderWeightNorm, 6);
        Assert.Equal(1, top[1].NormalizedActivation, 6);
        Assert.Equal(2, top[1].DecoderWeightNorm, 6);
        Assert.Equal(0.5, top[2].Activation, 6);
        // min_activation keeps latents at or above it (drrik's >=); with the default 0 every latent qualifies.
        Assert.Equal([0, 1, 66, 3], s.FindSteeringFeatures("hand", x, topK: 10, minActivation: 0.1).Select(f => f.FeatureIdx));
        Assert.Equal(20, s.FindSteeringFeatures("hand", x).Count);
        Assert.Empty(s.FindSteeringFeatures("hand", x, minActivation: 2.5));
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void FindSteeringFeaturesOfATextAveragesTheSaesCodesOverItsTokensWithoutBos()
    {
        var m = LoadStories();
        var sae = Random("topk", 64, Metadata(Hook), dSae: 64);
        var s = Steering(m, sae);
        var prompt = s.EncodePrompt(Prompt);
        Assert.Equal(1, prompt[0]);
        var acts = m.RunWithCache(prompt, [Hook], returnLogits: false).Cache[Hook];
        var codes = sae.Encode(acts);
        var found = s.FindSteeringFeatures(Prompt, topK: 5);
        foreach (var f in found)
        {
            double mean = Enumerable.Range(1, prompt.Length - 1).Average(p => (double)codes[p, f.FeatureIdx]);
            Assert.Equal(mean, f.Activation, 5);
        }
        Assert.True(found[0].Activation > 0);
        Assert.Equal(prompt.Length, s.PromptActivations(prompt, includeSpecialTokens: true).Rows);
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void GetSteeringDirectionIsTheDecoderRowUnitLengthByDefault()
    {
        var m = LoadStories();
        var sae = Random("topk", 64, Metadata(Hook), dSae: 64);
        var s = Steering(m, sae);
        var raw = s.GetSteeringDirection(9, normalize: false);
        Assert.Equal(sae.WDec.Row(9).ToArray(), raw);
        var unit = s.GetSteeringDirection(9);
        double norm = Math.Sqrt(raw.Sum(v => (double)v * v));
        Assert.Equal(1, Math.Sqrt(unit.Sum(v => (double)v * v)), 5);
        for (int j = 0; j < 64; j++) Assert.Equal(raw[j] / norm, unit[j], 5);
        sae.WDec.Row(10).Clear();
        Assert.All(s.GetSteeringDirection(10), v => Assert.Equal(0f, v)); // a zero row stays zero
    }

    [Fact]
    public void TheAnalysisTextFollowsDrrikAndANameIsNeverTakenTwice()
    {
        using var dir = new TempDir();
        var results = new Dictionary<string, string> { ["baseline"] = "Once upon a time.", ["strength_2.0"] = "Once upon a dog." };
        var when = new DateTime(2025, 3, 4, 5, 6, 7);
        string first = SteeringAnalysisFile.Write(dir.Root, "Once upon", "feature_42", results, new JsonObject { ["extra"] = 1 }, when);
        Assert.Equal(Path.Combine(dir.Root, "steering_analysis_feature_42_20250304_050607.txt"), first);
        string rule80 = new('=', 80), rule40 = new('-', 40);
        Assert.Equal($"Prompt: Once upon\n{rule80}\n\n--- baseline ---\nOnce upon a time.\n\n{rule40}\n--- strength_2.0 ---\nOnce upon a dog.\n\n{rule40}\n",
            File.ReadAllText(first));
        var json = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(first, ".json")))!;
        Assert.Equal("Once upon a dog.", (string?)json["results"]!["strength_2.0"]);
        Assert.Equal("feature_42", (string?)json["feature_label"]);
        Assert.Equal(1, (int)json["extra"]!);
        string second = SteeringAnalysisFile.Write(dir.Root, "Once upon", "feature_42", results, [], when);
        Assert.EndsWith("_20250304_050607_2.txt", second);
        Assert.Equal(File.ReadAllText(first), File.ReadAllText(second));
        Assert.Matches(new Regex(@"steering_analysis_\d{8}_\d{6}\.txt$"), SteeringAnalysisFile.Write(dir.Root, "", "", results, [], DateTime.Now));
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void SaveSteeringAnalysisWritesTheComparisonWithItsEffects()
    {
        using var dir = new TempDir();
        var m = LoadStories();
        var s = Steering(m, Random("topk", 64, Metadata(Hook), dSae: 64));
        var results = s.CompareSteering(Prompt, 7, [0, 3], maxNewTokens: 8);
        string path = s.SaveSteeringAnalysis(results, dir.Root, Prompt, "feature_7");
        Assert.Contains("--- strength_3.0 ---\n" + results["strength_3.0"] + "\n", File.ReadAllText(path));
        var comparison = s.Compare(s.EncodePrompt(Prompt), [new SteeringFeature(7)], [0, 3], s.Options(8, 0.8f, 0.9f));
        var json = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(s.SaveSteeringAnalysis(comparison, dir.Root, Prompt, "feature_7", new JsonObject { ["model_path"] = "m" }), ".json")))!;
        Assert.Equal(results["strength_3.0"], (string?)json["runs"]![1]!["text"]);
        Assert.Equal(comparison.Runs[1].Effects!.Kl.Length, json["runs"]![1]!["kl_per_generated_token"]!.AsArray().Count);
        Assert.Equal("add", (string?)json["steering"]!["mode"]);
        Assert.Equal(Hook, (string?)json["steering"]!["hook_name"]);
        Assert.Equal("m", (string?)json["rerun"]!["model_path"]);
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void BadInputIsRefusedNamingWhatIsWrong()
    {
        var m = LoadStories();
        var s = Steering(m, Random("topk", 64, Metadata(Hook), dSae: 64));
        var range = Assert.Throws<ArgumentOutOfRangeException>(() => s.Generate(Prompt, featureIdx: 64));
        Assert.Contains("feature_idx 64 out of range [0, 64)", range.Message);
        Assert.Contains("feature_idx -1 out of range", Assert.Throws<ArgumentOutOfRangeException>(() => s.GetSteeringDirection(-1)).Message);
        Assert.Contains("feature_idx 99 out of range", Assert.Throws<ArgumentOutOfRangeException>(() => s.Generate(Prompt, featureIndices: [1, 99])).Message);
        Assert.Contains("same length", Assert.Throws<ArgumentException>(() => s.Generate(Prompt, featureIndices: [1, 2], strengths: [1.0])).Message);
        Assert.Contains("must be finite", Assert.Throws<ArgumentException>(() => s.Generate(Prompt, featureIdx: 3, strength: double.NaN)).Message);
        Assert.Contains("must be finite", Assert.Throws<ArgumentException>(() => s.CompareSteering(Prompt, 3, [0, double.PositiveInfinity])).Message);
        Assert.Contains("given twice", Assert.Throws<ArgumentException>(() => s.CompareSteering(Prompt, 3, [1, 2, 1])).Message);
        var clamp = new SteeringIntervention { Features = [new(3, 1), new(3, 2)], Mode = SteeringMode.Clamp };
        Assert.Contains("feature 3 is given twice", Assert.Throws<ArgumentException>(() => clamp.Validate(s.Sae.Sae)).Message);
        Assert.Contains("add mode only", Assert.Throws<ArgumentException>(() => (clamp with { Features = [new(3, 1)], Normalize = true }).Validate(s.Sae.Sae)).Message);
        Assert.Contains("[n, 64]", Assert.Throws<ArgumentException>(() => s.FindSteeringFeatures("x", new Tensor(2, 32))).Message);
        Assert.Contains("only special tokens", Assert.Throws<ArgumentException>(() => s.PromptActivations([1])).Message);
        // An SAE whose d_in or hook does not fit the model.
        Assert.Contains("d_in 32 does not fit hook 'blocks.2.hook_resid_post'",
            Assert.Throws<ArgumentException>(() => Hooked(m, Random("topk", 32, Metadata(Hook)))).Message);
        Assert.Contains("'blocks.9.hook_resid_post' is not a hook point",
            Assert.Throws<ArgumentException>(() => Hooked(m, Random("topk", 64, Metadata("blocks.9.hook_resid_post")))).Message);
    }
}
