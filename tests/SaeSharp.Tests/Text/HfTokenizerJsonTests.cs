using System.Text.Json.Nodes;
using SaeSharp.Tests.IO;
using SaeSharp.Text;

namespace SaeSharp.Tests.Text;

/// <summary>tokenizer.json files that are valid JSON but not a tokenizer SaeSharp can reproduce: refused, naming file and field.</summary>
public class HfTokenizerJsonTests
{
    /// <summary>A byte-level BPE over "a", "b", "Ġ" (space) with one merge, as GPT-2's tokenizer.json lays it out.</summary>
    private static JsonObject ByteLevel() => new()
    {
        ["model"] = new JsonObject
        {
            ["type"] = "BPE",
            ["vocab"] = new JsonObject { ["a"] = 0, ["b"] = 1, ["Ġ"] = 2, ["ab"] = 3, ["<|endoftext|>"] = 4 },
            ["merges"] = new JsonArray("a b"),
        },
        ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 4, ["content"] = "<|endoftext|>", ["special"] = true }),
        ["normalizer"] = null,
        ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
        ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
    };

    private static string Write(TempDir dir, JsonObject json)
    {
        string path = dir.File("tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    private static string Refused(Action<JsonObject> edit)
    {
        using var dir = new TempDir();
        var json = ByteLevel();
        edit(json);
        string path = Write(dir, json);
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Load(path));
        Assert.Contains(path, e.Message);
        return e.Message;
    }

    [Fact]
    public void TheMinimalFileLoads()
    {
        using var dir = new TempDir();
        var tok = Tokenizers.Load(Write(dir, ByteLevel()));
        Assert.Equal([3, 2, 1], tok.Encode("ab b"));
        Assert.Equal("ab b", tok.Decode([3, 2, 1]));
    }

    [Theory]
    [InlineData("1000000000000")]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("\"3\"")]
    public void VocabIdsMustBeSmallNonNegativeIntegers(string id)
    {
        string m = Refused(j => j["model"]!["vocab"]!["b"] = JsonNode.Parse(id));
        Assert.Contains("model.vocab", m);
        Assert.Contains("'b'", m);
    }

    [Fact]
    public void DuplicateVocabIdsAreRefused()
    {
        string m = Refused(j => j["model"]!["vocab"]!["b"] = 0);
        Assert.Contains("'a'", m);
        Assert.Contains("'b'", m);
    }

    [Theory]
    [InlineData("{\"id\": \"4\", \"content\": \"<|endoftext|>\"}")]
    [InlineData("{\"id\": 4}")]
    [InlineData("{\"id\": 4, \"content\": 17}")]
    [InlineData("\"<|endoftext|>\"")]
    public void MalformedAddedTokensAreNamed(string entry) =>
        Assert.Contains("added_tokens[0]", Refused(j => j["added_tokens"] = new JsonArray(JsonNode.Parse(entry))));

    [Fact]
    public void AddedTokenClashingWithTheVocabIsRefused() =>
        Assert.Contains("added_tokens[0]", Refused(j => j["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 1, ["content"] = "<|endoftext|>" })));

    [Theory]
    [InlineData("{\"type\": \"Whitespace\"}", "Whitespace")]
    [InlineData("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\d\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\"}]}", "Split")]
    [InlineData("{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", "add_prefix_space")]
    [InlineData("{\"type\": \"ByteLevel\", \"use_regex\": false}", "use_regex")]
    public void PreTokenizersThatWouldBeIgnoredAreRefused(string pre, string named) =>
        Assert.Contains(named, Refused(j => j["pre_tokenizer"] = JsonNode.Parse(pre)));

    [Fact]
    public void NormalizerOnByteLevelIsRefused() =>
        Assert.Contains("NFC", Refused(j => j["normalizer"] = new JsonObject { ["type"] = "NFC" }));

    [Fact]
    public void MalformedMergesAreNamed() =>
        Assert.Contains("model.merges[0]", Refused(j => j["model"]!["merges"] = new JsonArray(new JsonArray(1, 2))));

    [Fact]
    public void EncoderJsonIdsAreChecked()
    {
        using var dir = new TempDir();
        string enc = dir.File("encoder.json"), bpe = dir.File("vocab.bpe");
        File.WriteAllText(enc, """{"a": 0, "b": 1000000000000}""");
        File.WriteAllText(bpe, "#version: 0.2\na b\n");
        var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Load(dir.Root));
        Assert.Contains(enc, e.Message);
        Assert.Contains("'b'", e.Message);
    }
}
