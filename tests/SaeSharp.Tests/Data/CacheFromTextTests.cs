using SaeSharp.IO;
using SaeSharp.Text;

namespace SaeSharp.Tests.Data;

public class CacheFromTextTests
{
    private const string Model = "models/stories260K";

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json")]
    public void TextDatasetIsEncodedWithTheModelsTokenizer()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        string text = Path.Combine(dir, "stories.txt");
        // Short documents, so the first 16-token context crosses document boundaries.
        var docs = new[] { "Once upon a time.", "Lily ran.", "The dog saw a big red ball." };
        File.WriteAllLines(text, Enumerable.Repeat(docs, 12).SelectMany(d => d));
        var (code, output, err) = SaeSharp.Tests.Cli.CliRunner.Run("cache", "--model", SharedData.Path(Model), "--hook", "blocks.1.hook_resid_post",
            "--dataset", text, "--tokens", "64", "--context-size", "16", "--out", Path.Combine(dir, "cache"));
        Assert.True(code == 0, err + output);
        using var shard = SafetensorsFile.Open(Path.Combine(dir, "cache", "shard_00000.safetensors"));
        var tokens = shard.ReadInt64("tokens");
        Assert.Equal(64, tokens.Length);
        // Each context starts with BOS (1); the rest continues the tokenised documents, concatenated with BOS between
        // them (SAELens's default sequence_separator_token, as `train --model` uses).
        var tokenizer = Tokenizers.Load(SharedData.Path(Model));
        var stream = docs.SelectMany(d => tokenizer.Encode(d).Prepend(1)).Skip(1).ToArray();
        Assert.Contains(1, stream.Take(15)); // the first context crosses a document boundary
        Assert.Equal(1, tokens[0]);
        Assert.Equal(stream.Take(15).Select(t => (long)t), tokens.Skip(1).Take(15));
        Directory.Delete(dir, true);
    }

    [SharedFact(Model + "/tokenizer.json")]
    public void PretokenizeWritesTheDocumentsTokensAndBoundaries()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        string text = Path.Combine(dir, "stories.txt");
        var docs = new[] { "Once upon a time, there was a little girl named Lily.", "She loved to play outside." };
        File.WriteAllLines(text, docs);
        string tokens = Path.Combine(dir, "tokens.safetensors");
        var (code, output, err) = SaeSharp.Tests.Cli.CliRunner.Run("pretokenize", "--tokenizer", SharedData.Path(Model), "--dataset", text, "--out", tokens, "--prepend-bos");
        Assert.True(code == 0, err + output);
        var tokenizer = Tokenizers.Load(SharedData.Path(Model));
        var read = SaeSharp.Data.TokenFile.Read(tokens);
        Assert.Equal(2, read.Count);
        for (int i = 0; i < docs.Length; i++) Assert.Equal(tokenizer.Encode(docs[i], addBos: true), read[i]);
        Assert.Equal(1, read[0][0]); // BOS
        Directory.Delete(dir, true);
    }
}
