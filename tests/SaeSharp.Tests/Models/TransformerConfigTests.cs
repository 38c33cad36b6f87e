using SaeSharp.Models;
using SaeSharp.Tests.IO;

namespace SaeSharp.Tests.Models;

/// <summary>Hugging Face config.json parsing: hostile files fail with the file and the key named.</summary>
public class TransformerConfigTests
{
    private const string Gpt2 = """{"model_type":"gpt2","n_embd":64,"n_head":4,"n_layer":2,"n_positions":128,"vocab_size":1000}""";
    private const string Llama = """{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,"intermediate_size":172,"vocab_size":512}""";
    private const string Neox = """{"model_type":"gpt_neox","hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,"intermediate_size":256,"vocab_size":512}""";

    private static InvalidDataException Refused(string json)
    {
        using var dir = new TempDir();
        string path = dir.File("config.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<InvalidDataException>(() => TransformerConfig.FromHuggingFace(path));
        Assert.Contains(path, e.Message);
        return e;
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("not json at all")]
    [InlineData("{\"model_type\": \"gpt2\",")]
    public void EmptyOrNonJsonFileIsNamed(string json) => Assert.Contains("JSON", Refused(json).Message);

    [Theory]
    [InlineData("[1, 2]")]
    [InlineData("null")]
    [InlineData("\"gpt2\"")]
    public void TopLevelMustBeAnObject(string json) => Assert.Contains("object", Refused(json).Message);

    [Theory]
    [InlineData(Gpt2, "n_head", "0")]
    [InlineData(Gpt2, "n_head", "-4")]
    [InlineData(Gpt2, "n_embd", "0")]
    [InlineData(Gpt2, "n_layer", "0")]
    [InlineData(Gpt2, "n_positions", "-1")]
    [InlineData(Llama, "num_attention_heads", "0")]
    [InlineData(Llama, "hidden_size", "-64")]
    [InlineData(Llama, "num_key_value_heads", "0")]
    [InlineData(Llama, "head_dim", "0")]
    [InlineData(Neox, "num_attention_heads", "0")]
    [InlineData(Neox, "vocab_size", "0")]
    public void ZeroOrNegativeSizesAreNamed(string baseJson, string key, string value)
    {
        var e = Refused(baseJson.TrimEnd('}') + $",\"{key}\":{value}}}");
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains("positive", e.Message);
    }

    [Fact]
    public void SizesAreCheckedIn64Bits()
    {
        // 4 * n_embd overflowed int32 before ("'d_mlp' must be positive, got -294967296").
        var e = Refused(Gpt2.Replace("\"n_embd\":64", "\"n_embd\":1000000000").Replace("\"n_head\":4", "\"n_head\":1"));
        Assert.Contains("1000000000", e.Message);
        Assert.DoesNotContain("-294967296", e.Message);
        // A product of valid sizes that no tensor can hold is refused before anything is allocated.
        e = Refused(Llama.Replace("\"vocab_size\":512", "\"vocab_size\":2000000000"));
        Assert.Contains("vocab_size", e.Message);
    }

    [Fact]
    public void ValidConfigsStillParse()
    {
        using var dir = new TempDir();
        foreach (var json in new[] { Gpt2, Llama, Neox })
        {
            string path = dir.File("config.json");
            File.WriteAllText(path, json);
            var c = TransformerConfig.FromHuggingFace(path);
            Assert.Equal(64, c.DModel);
            Assert.Equal(16, c.DHead);
        }
    }
}
