using System.Text.Json;
using SaeSharp.Models;
using SaeSharp.Tensors;
using SaeSharp.Text;

namespace SaeSharp.Tests.Models;

public class TinyStoriesNllTests
{
    private const string Dir = "models/stories260K";

    [SharedTheory(Dir + "/model.safetensors", Dir + "/stories260K.bin", Dir + "/tok512.bin",
        Dir + "/reference/tinystories_sample.txt", Dir + "/reference/nll_tinystories_sample.json")]
    [InlineData("")]
    [InlineData("stories260K.bin")]
    public void MeanNllOnTheSampleMatchesReference(string modelFile)
    {
        var model = HookedTransformer.Load(SharedData.Path(modelFile == "" ? Dir : Dir + "/" + modelFile), Compute.All);
        var tokenizer = Tokenizers.Load(SharedData.Path(Dir + "/tok512.bin"));
        using var reference = JsonDocument.Parse(File.ReadAllText(SharedData.Path(Dir + "/reference/nll_tinystories_sample.json")));
        // The reference's procedure: split on <|endoftext|>, strip, drop empty, encode with BOS, predict tokens[1:].
        var stories = File.ReadAllText(SharedData.Path(Dir + "/reference/tinystories_sample.txt"))
            .Split("<|endoftext|>").Select(s => s.Trim()).Where(s => s.Length > 0).ToList();
        var expected = reference.RootElement.GetProperty("stories").EnumerateArray().ToList();
        Assert.Equal(expected.Count, stories.Count);
        double total = 0;
        int predictions = 0;
        for (int i = 0; i < stories.Count; i++)
        {
            var tokens = tokenizer.Encode(stories[i], addBos: true);
            Assert.Equal(expected[i].GetProperty("tokens").GetInt32(), tokens.Length);
            double nll = model.MeanNll(tokens);
            Assert.Equal(expected[i].GetProperty("mean_nll").GetDouble(), nll, 1e-3);
            total += nll * (tokens.Length - 1);
            predictions += tokens.Length - 1;
        }
        Assert.Equal(reference.RootElement.GetProperty("predictions").GetInt32(), predictions);
        Assert.Equal(reference.RootElement.GetProperty("overall_mean_nll").GetDouble(), total / predictions, 1e-3);
    }
}

public class GenerateTextPromptTests
{
    private const string Dir = "models/stories260K";

    [SharedFact(Dir + "/model.safetensors", Dir + "/tokenizer.json", Dir + "/reference/greedy_once_upon_a_time.json")]
    public void TextPromptGivesTheReferenceGreedyText()
    {
        using var reference = System.Text.Json.JsonDocument.Parse(File.ReadAllText(SharedData.Path(Dir + "/reference/greedy_once_upon_a_time.json")));
        string expected = reference.RootElement.GetProperty("text").GetString()!;
        var (code, output, err) = SaeSharp.Tests.Cli.CliRunner.Run("generate", "--model", SharedData.Path(Dir), "--prompt", "Once upon a time", "--max-tokens", "64", "--no-stop");
        Assert.True(code == 0, err);
        Assert.Equal(expected.Trim(), output.Trim());
    }
}
