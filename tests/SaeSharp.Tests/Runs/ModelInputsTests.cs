using SaeSharp.Tensors;
using SaeSharp.Data;
using SaeSharp.Models;
using SaeSharp.Runs;
using SaeSharp.Tests.IO;
using SaeSharp.Tests.Models;

namespace SaeSharp.Tests.Runs;

public class ModelInputsTests
{
    [Fact]
    public void AContextLongerThanTheModelsIsRefused()
    {
        using var dir = new TempDir();
        ModelLoaderTests.WriteTinyLlama(dir.Root);
        var cfg = HookedTransformer.Load(dir.Root, Compute.All).Config;
        var docs = new[] { Enumerable.Range(0, 100).Select(i => 3 + i % 13).ToArray() };
        Assert.Equal(3, ModelInputs.Contexts(docs, cfg, new ContextSettings { ContextSize = 32 }).Count());
        var e = Assert.Throws<ArgumentException>(() => ModelInputs.Contexts(docs, cfg, new ContextSettings { ContextSize = 33 }).ToList());
        Assert.Contains("33", e.Message);
        Assert.Contains("32", e.Message);
    }

    [Fact]
    public void CacheAndTrainRefuseAContextSizeAboveTheModels()
    {
        using var dir = new TempDir();
        ModelLoaderTests.WriteTinyLlama(dir.Root);
        string tokens = dir.File("tokens.safetensors");
        TokenFile.Write(tokens, [Enumerable.Range(0, 400).Select(i => 3 + i % 13).ToArray()]);
        var r = Cli.CliRunner.Run("cache", "--model", dir.Root, "--hook", "blocks.0.hook_resid_post", "--tokens-file", tokens,
            "--tokens", "256", "--context-size", "64", "--out", dir.File("cache"));
        Assert.Equal(1, r.Code);
        Assert.Contains("32 positions", r.Err);
        r = Cli.CliRunner.Run("train", "--model", dir.Root, "--hook", "blocks.0.hook_resid_post", "--tokens-file", tokens,
            "--d-sae", "16", "--k", "2", "--steps", "2", "--batch-size", "8", "--set", "context_size=64", "--out", dir.File("run"));
        Assert.Equal(1, r.Code);
        Assert.Contains("32 positions", r.Err);
    }

    [Fact]
    public void ExtractTruncatesLongDocumentsWithAWarning()
    {
        using var dir = new TempDir();
        ModelLoaderTests.WriteTinyLlama(dir.Root);
        string tokens = dir.File("tokens.safetensors");
        int[] longDoc = Enumerable.Range(0, 50).Select(i => 3 + i % 13).ToArray();
        TokenFile.Write(tokens, [[1, 5, 6], longDoc]);
        var r = Cli.CliRunner.Run("extract", "--model", dir.Root, "--hook", "blocks.0.hook_resid_post", "--tokens-file", tokens, "--out", dir.File("x"));
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("warning", r.Err);
        Assert.Contains("1 of 2 documents", r.Err);
        var (acts, meta) = DocumentExtraction.Load(dir.File("x"));
        Assert.Equal(31, meta.Samples[1].Position);
        Assert.Equal(longDoc[..32], meta.Samples[1].TokenIds);
        // The row is the model's activation at the last kept position.
        var m = HookedTransformer.Load(dir.Root, Compute.All);
        var want = m.RunWithCache(longDoc[..32], ["blocks.0.hook_resid_post"], returnLogits: false).Cache["blocks.0.hook_resid_post"].Row(31).ToArray();
        Assert.Equal(want, acts.Row(1).ToArray());
    }

    [SharedFact("models/stories260K/model.safetensors", "models/stories260K/tokenizer.json")]
    public void ExtractRecordsEachDocumentsText()
    {
        using var dir = new TempDir();
        string model = Path.GetDirectoryName(SharedData.Path("models/stories260K/model.safetensors"))!;
        string[] lines = ["Once upon a time there was a cat.", "The dog ran to the park.", new string('z', 250)];
        string dataset = dir.File("docs.txt");
        File.WriteAllLines(dataset, lines);
        var r = Cli.CliRunner.Run("extract", "--model", model, "--hook", "blocks.0.hook_resid_post", "--dataset", dataset, "--out", dir.File("x"));
        Assert.True(r.Code == 0, r.Err);
        var (_, meta) = DocumentExtraction.Load(dir.File("x"));
        Assert.Equal([lines[0], lines[1], lines[2][..DocumentExtraction.TextPreviewChars]], meta.Samples.Select(s => s.Text));

        // A token file has no text of its own: its tokens decoded with the model's tokenizer.
        string tokens = dir.File("tokens.safetensors");
        var tok = SaeSharp.Text.Tokenizers.ForModel(model);
        TokenFile.Write(tokens, lines[..2].Select(l => tok.Encode(l, addBos: true)));
        r = Cli.CliRunner.Run("extract", "--model", model, "--hook", "blocks.0.hook_resid_post", "--tokens-file", tokens, "--out", dir.File("y"));
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(lines[..2], DocumentExtraction.Load(dir.File("y")).Meta.Samples.Select(s => s.Text));
    }
}
