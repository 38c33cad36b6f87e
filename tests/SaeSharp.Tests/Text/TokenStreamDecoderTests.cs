using System.Text.Json.Nodes;
using SaeSharp.Tests.IO;
using SaeSharp.Text;

namespace SaeSharp.Tests.Text;

public class TokenStreamDecoderTests
{
    /// <summary>Byte-level BPE: "a"=0, "Ġ" (space)=1, "Ġa"=2, and the two UTF-8 bytes of "é" (0xC3 "Ã", 0xA9 "©") = 3, 4.</summary>
    private static ITokenizer Tokenizer(TempDir dir)
    {
        var json = new JsonObject
        {
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = new JsonObject { ["a"] = 0, ["Ġ"] = 1, ["Ġa"] = 2, ["Ã"] = 3, ["©"] = 4 }, ["merges"] = new JsonArray("Ġ a") },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel" },
        };
        string path = dir.File("tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        return Tokenizers.Load(path);
    }

    [Fact]
    public void EachTokenIsDecodedAfterItsPredecessor()
    {
        using var dir = new TempDir();
        var tok = Tokenizer(dir);
        var d = new TokenStreamDecoder(tok, context: 0);
        Assert.Equal(" a", d.Push(2));
        Assert.Equal(" a", d.Push(2));
        Assert.Equal(" a a", d.Text);
    }

    [Fact]
    public void ACharacterSplitAcrossTokensComesOutWhole()
    {
        using var dir = new TempDir();
        var d = new TokenStreamDecoder(Tokenizer(dir), context: 0);
        Assert.Equal("", d.Push(3));
        Assert.Equal("é", d.Push(4));
        Assert.Equal(" a", d.Push(2));
        Assert.Equal("é a", d.Text);
    }

    [SharedFact("models/stories260K/tok512.bin", "models/stories260K/tokenizer.json")]
    public void SentencepieceKeepsTheSpaceOfTheFirstContinuationToken()
    {
        foreach (var file in new[] { "tok512.bin", "tokenizer.json" })
        {
            var tok = Tokenizers.Load(SharedData.Path("models/stories260K/" + file));
            int[] prompt = tok.Encode("Once upon a", addBos: true);
            int time = tok.Encode("Once upon a time", addBos: true)[^1];
            var d = new TokenStreamDecoder(tok, prompt[^1]);
            Assert.Equal(" time", d.Push(time));
            // After BOS alone a piece loses its leading space, as llama2.c's and Hugging Face's decoders do.
            Assert.Equal("time", new TokenStreamDecoder(tok, tok.BosId).Push(time));
        }
    }
}
