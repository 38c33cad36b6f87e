using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.IO;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Runs;

/// <summary>`saesharp steer` and `saesharp features` as library jobs: settings, saved analyses that rerun to the same texts, hooks and errors.</summary>
public sealed class SteerRunTests : IDisposable
{
    private const string Hook = "blocks.2.hook_resid_post";
    private const string Prompt = "Once upon a time, there was a little girl";
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-steer").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private string Save(Sae sae, string name)
    {
        string dir = Path.Combine(_dir, name);
        SaeFiles.Save(sae, dir);
        return dir;
    }

    [Fact]
    public void FeaturesAndStrengthsParseAndBadOnesAreNamed()
    {
        var (features, explicitValues) = new SteerSettings { Features = "12=4.0, 40=-2,7" }.ParseFeatures();
        Assert.Equal([new SteeringFeature(12, 4), new SteeringFeature(40, -2), new SteeringFeature(7, 1)], features);
        Assert.Equal([true, true, false], explicitValues);
        Assert.Equal([0, 0.5, -3], new SteerSettings { Strengths = "0, 0.5,-3" }.ParseStrengths());
        Assert.Equal([0, 1, 2, 3, 5], new SteerSettings().ParseStrengths()); // drrik's compare_steering default

        string Error(SteerSettings s) => Assert.Throws<ArgumentException>(s.Validate).Message;
        Assert.Contains("'abc' is not a latent index", Error(new() { Features = "abc" }));
        Assert.Contains("'-4' is not a latent index", Error(new() { Features = "-4=1" }));
        Assert.Contains("strength 'x' is not a number", Error(new() { Features = "3=x" }));
        Assert.Contains("'3=NaN': the strength must be finite", Error(new() { Features = "3=NaN" }));
        Assert.Contains("give at least one latent", Error(new() { Features = " , " }));
        Assert.Contains("'x' is not a finite number", Error(new() { Features = "3", Strengths = "1,x" }));
        Assert.Contains("'Infinity' is not a finite number", Error(new() { Features = "3", Strengths = "Infinity" }));
        Assert.Contains("clamp sets each latent to a value", Error(new() { Features = "3=2,4", Mode = SteeringMode.Clamp }));
        Assert.Contains("ablate sets latents to 0", Error(new() { Features = "3=2", Mode = SteeringMode.Ablate }));
        Assert.Contains("add mode only", Error(new() { Features = "3", Mode = SteeringMode.Ablate, Normalize = true }));
        Assert.Contains("top-p", Error(new() { Features = "3", TopP = 0 }));
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void ASavedAnalysisRerunsToTheSameTexts()
    {
        string sae = Save(Random("topk", 64, Metadata(Hook), dSae: 64), "sae");
        var settings = new SteerSettings { Features = "7=2,11", Strengths = "0,1.5", MaxTokens = 12, Positions = SteeringPositions.Generated, Seed = 5 };
        var lines = new StringWriter();
        var first = SteerRun.Execute(settings, SharedData.Path(Stories), sae, Prompt, null, Path.Combine(_dir, "out"), new TextReporter(lines), Compute.All);
        Assert.Equal(["baseline", "strength_1.5"], first.Comparison.Texts.Keys);
        string json = Path.ChangeExtension(first.AnalysisFile!, ".json");
        Assert.Matches(@"steering_analysis_features_7_11_\d{8}_\d{6}\.txt$", first.AnalysisFile!);
        var saved = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal(ConfigBinder.ToJson(settings).ToJsonString(), saved["rerun"]!["settings"]!.ToJsonString());
        Assert.Equal("generated", (string?)saved["steering"]!["positions"]);

        var again = SteerRun.Rerun(json, null, TextReporter.Silent, Compute.All);
        Assert.Null(again.AnalysisFile);
        Assert.Equal(first.Comparison.Texts, again.Comparison.Texts);
        Assert.NotEqual(first.Comparison.Texts["baseline"], first.Comparison.Texts["strength_1.5"]);
        string printed = lines.ToString();
        Assert.Contains("--- strength_1.5 ---", printed);
        Assert.Contains("KL(steered || unsteered) per generated token", printed);
        Assert.Contains("logit change of the direction's top tokens", printed);

        File.WriteAllText(Path.Combine(_dir, "bad.json"), "{\"prompt\": \"x\"}");
        Assert.Contains("no 'rerun' object", Assert.Throws<InvalidDataException>(() => SteerRun.Rerun(Path.Combine(_dir, "bad.json"), null, TextReporter.Silent, Compute.All)).Message);
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void TheHookDefaultsToTheSaesOwnAndCanBeOverridden()
    {
        var m = LoadStories();
        string own = Save(Random("topk", 64, Metadata(Hook), dSae: 64), "own");
        Assert.Equal(Hook, SteerRun.LoadSae(m, own, null, Compute.All).Site.OutputHook);
        Assert.Equal("blocks.0.hook_resid_post", SteerRun.LoadSae(m, own, "blocks.0.hook_resid_post", Compute.All).Site.OutputHook);
        string none = Save(Random("topk", 64, [], dSae: 64), "none");
        Assert.Contains("no hook_name", Assert.Throws<ArgumentException>(() => SteerRun.LoadSae(m, none, null, Compute.All)).Message);
        Assert.Equal("blocks.3.hook_mlp_out", SteerRun.LoadSae(m, none, "blocks.3.hook_mlp_out", Compute.All).Site.OutputHook);
        Assert.Contains("d_in 64 does not fit hook 'blocks.1.mlp.hook_post'",
            Assert.Throws<ArgumentException>(() => SteerRun.LoadSae(m, own, "blocks.1.mlp.hook_post", Compute.All)).Message);
        string tc = Save(Random("transcoder", 64, Metadata("blocks.1.ln2.hook_normalized", hookOut: "blocks.1.hook_mlp_out"), dOut: 64), "tc");
        Assert.Contains("reads and writes its own hooks", Assert.Throws<ArgumentException>(() => SteerRun.LoadSae(m, tc, Hook, Compute.All)).Message);
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void PromptFeaturesListsTheTopLatentsWithTheirTokens()
    {
        string sae = Save(Random("topk", 64, Metadata(Hook), dSae: 64), "sae");
        var lines = new StringWriter();
        var found = PromptFeaturesRun.Execute(new PromptFeaturesSettings { TopK = 4 }, SharedData.Path(Stories), sae, Prompt, null, new TextReporter(lines), Compute.All);
        Assert.Equal(4, found.Count);
        Assert.True(found.Zip(found.Skip(1)).All(p => p.First.Activation.Activation >= p.Second.Activation.Activation));
        Assert.All(found, f => Assert.Equal(3, f.TopTokens.Count));
        var table = lines.ToString().Split('\n');
        Assert.Contains("feature  activation  normalized_activation  decoder_weight_norm  top tokens", table[1]);
        Assert.StartsWith(found[0].Activation.FeatureIdx.ToString(System.Globalization.CultureInfo.InvariantCulture), table[2].TrimStart());
        Assert.Contains("top_k must be at least 1", Assert.Throws<ArgumentException>(() =>
            PromptFeaturesRun.Execute(new PromptFeaturesSettings { TopK = 0 }, SharedData.Path(Stories), sae, Prompt, null, TextReporter.Silent, Compute.All)).Message);
    }
}
