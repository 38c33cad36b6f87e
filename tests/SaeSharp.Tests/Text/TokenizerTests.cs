using System.Text.Json;
using SaeSharp.Text;
using Xunit;

namespace SaeSharp.Tests.Text;

public class TokenizerTests
{
    private const string Gpt2Dir = "tokenizers/gpt2";
    private const string Gpt2Json = "tokenizers/gpt2/tokenizer.json";
    private const string Gpt2Enc = "tokenizers/gpt2/encoder.json";
    private const string Gpt2Bpe = "tokenizers/gpt2/vocab.bpe";
    private const string Gpt2Ref = "tokenizers/gpt2/reference_encodings.json";
    private const string StoriesJson = "models/stories260K/tokenizer.json";
    private const string StoriesBin = "models/stories260K/tok512.bin";
    private const string StoriesRef = "models/stories260K/reference/tokenizer_encodings.json";

    private static List<(string Text, int[] Ids)> ReadRef(string rel)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(SharedData.Path(rel)));
        return doc.RootElement.EnumerateArray()
            .Select(e => (e.GetProperty("text").GetString()!, e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray()))
            .ToList();
    }

    private static void CheckAll(ITokenizer tok, List<(string Text, int[] Ids)> refs, bool bos)
    {
        Assert.NotEmpty(refs);
        foreach (var (text, ids) in refs)
        {
            var got = tok.Encode(text, bos);
            Assert.True(ids.SequenceEqual(got), $"'{text}': expected [{string.Join(",", ids)}] got [{string.Join(",", got)}]");
            Assert.Equal(text, tok.Decode(got));
        }
    }

    [SharedFact(Gpt2Json, Gpt2Ref)]
    public void Gpt2_TokenizerJson_MatchesReference()
    {
        var tok = Tokenizers.Load(SharedData.Path(Gpt2Json));
        Assert.IsType<ByteLevelBpeTokenizer>(tok);
        Assert.Equal(50257, tok.VocabSize);
        Assert.Equal(50256, tok.EosId);
        CheckAll(tok, ReadRef(Gpt2Ref), bos: false);
    }

    [SharedFact(Gpt2Enc, Gpt2Bpe, Gpt2Ref)]
    public void Gpt2_EncoderJsonVocabBpe_MatchesReference()
    {
        var tok = ByteLevelBpeTokenizer.LoadGpt2Files(SharedData.Path(Gpt2Enc), SharedData.Path(Gpt2Bpe));
        CheckAll(tok, ReadRef(Gpt2Ref), bos: false);
        var viaFile = Tokenizers.Load(SharedData.Path(Gpt2Bpe));
        Assert.Equal(tok.Encode("Hello world, it's me."), viaFile.Encode("Hello world, it's me."));
    }

    [SharedFact(Gpt2Json)]
    public void Gpt2_SpecialToken_MatchedBeforePreTokenization()
    {
        var tok = Tokenizers.Load(SharedData.Path(Gpt2Json));
        var ids = tok.Encode("Hi<|endoftext|> there");
        Assert.Equal(50256, ids[1]);
        Assert.Equal("Hi", tok.Decode(ids.AsSpan(0, 1)));
        Assert.Equal("Hi<|endoftext|> there", tok.Decode(ids));
        Assert.Equal(" there", tok.Decode(ids.AsSpan(2)));
        Assert.Equal("Ġthere", tok.TokenText(ids[2]));
    }

    [SharedFact(StoriesJson, StoriesRef)]
    public void Stories_TokenizerJson_MatchesReference()
    {
        var tok = Tokenizers.Load(SharedData.Path(StoriesJson));
        Assert.IsType<SentencePieceBpeTokenizer>(tok);
        Assert.Equal(512, tok.VocabSize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        CheckAll(tok, ReadRef(StoriesRef), bos: true);
    }

    [SharedFact(StoriesBin, StoriesRef)]
    public void Stories_Tok512Bin_MatchesReference()
    {
        var tok = Tokenizers.Load(SharedData.Path(StoriesBin));
        Assert.IsType<Llama2cTokenizer>(tok);
        Assert.Equal(512, tok.VocabSize);
        Assert.Equal(" ", tok.TokenText(410));
        CheckAll(tok, ReadRef(StoriesRef), bos: true);
        Assert.Empty(tok.Encode(""));
        Assert.Equal(new[] { 1 }, tok.Encode("", addBos: true));
    }

    [SharedFact(StoriesJson, StoriesBin)]
    public void Stories_FolderPrefersTokenizerJson()
    {
        var dir = Path.GetDirectoryName(SharedData.Path(StoriesJson))!;
        Assert.IsType<SentencePieceBpeTokenizer>(Tokenizers.Load(dir));
        var gdir = Path.GetDirectoryName(SharedData.Path(Gpt2Json))!;
        Assert.IsType<ByteLevelBpeTokenizer>(Tokenizers.Load(gdir));
    }

    [SharedFact(StoriesJson, StoriesBin, Gpt2Json, Gpt2Enc, Gpt2Bpe, "models/stories260K/reference/tinystories_sample.txt")]
    public void BothFormats_AgreeOnTinyStoriesSample()
    {
        var text = File.ReadAllText(SharedData.Path("models/stories260K/reference/tinystories_sample.txt"));
        var stories = text.Split("<|endoftext|>").Select(s => s.Trim()).Where(s => s.Length > 0).ToList();
        Assert.Equal(5, stories.Count);
        var sj = Tokenizers.Load(SharedData.Path(StoriesJson));
        var sb = Tokenizers.Load(SharedData.Path(StoriesBin));
        var gj = Tokenizers.Load(SharedData.Path(Gpt2Json));
        var gb = ByteLevelBpeTokenizer.LoadGpt2Files(SharedData.Path(Gpt2Enc), SharedData.Path(Gpt2Bpe));
        int total = 0;
        foreach (var s in stories)
        {
            var ids = sb.Encode(s, addBos: true);
            Assert.Equal(ids, sj.Encode(s, addBos: true));
            Assert.Equal(s, sb.Decode(ids));
            var g = gb.Encode(s);
            Assert.Equal(g, gj.Encode(s));
            Assert.Equal(s, gj.Decode(g));
            total += ids.Length - 1;
        }
        // nll_tinystories_sample.json counts 1,806 predicted tokens (tokens[1:] of each story).
        Assert.Equal(1806, total);
    }

    [Fact]
    public void MissingFile_NamesIt()
    {
        var missing = Path.Combine(Path.GetTempPath(), "saesharp-no-such-" + Guid.NewGuid() + ".json");
        var e = Assert.Throws<FileNotFoundException>(() => Tokenizers.Load(missing));
        Assert.Contains(missing, e.Message);
        var emptyDir = Directory.CreateTempSubdirectory("saesharp-tok-").FullName;
        try
        {
            var d = Assert.Throws<FileNotFoundException>(() => Tokenizers.Load(emptyDir));
            Assert.Contains(emptyDir, d.Message);
        }
        finally { Directory.Delete(emptyDir, true); }
    }

    [Fact]
    public void BadJson_NamesFile()
    {
        var dir = Directory.CreateTempSubdirectory("saesharp-tok-").FullName;
        try
        {
            var p = Path.Combine(dir, "tokenizer.json");
            File.WriteAllText(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": ");
            var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Load(dir));
            Assert.Contains(p, e.Message);
            File.WriteAllText(p, "{\"model\": {\"type\": \"Unigram\"}}");
            e = Assert.Throws<InvalidDataException>(() => Tokenizers.Load(p));
            Assert.Contains("Unigram", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact(StoriesBin)]
    public void TruncatedTok512_NamesFile()
    {
        var bytes = File.ReadAllBytes(SharedData.Path(StoriesBin));
        var dir = Directory.CreateTempSubdirectory("saesharp-tok-").FullName;
        try
        {
            var p = Path.Combine(dir, "tok512.bin");
            File.WriteAllBytes(p, bytes[..(bytes.Length - 3)]);
            var e = Assert.Throws<InvalidDataException>(() => Tokenizers.Load(dir));
            Assert.Contains(p, e.Message);
            Assert.Contains("truncated", e.Message);
            File.WriteAllBytes(p, bytes[..2]);
            e = Assert.Throws<InvalidDataException>(() => Tokenizers.Load(p));
            Assert.Contains(p, e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}

public class TokenizeCommandTests
{
    [SharedFact("models/stories260K/tok512.bin")]
    public void Tokenize_PrintsIdsWithBos()
    {
        var dir = System.IO.Path.GetDirectoryName(SharedData.Path("models/stories260K/tok512.bin"))!;
        var (o, e) = (new StringWriter(), new StringWriter());
        int rc = SaeSharp.Cli.Program.Run(["tokenize", "--tokenizer", dir, "--text", "Once upon a time", "--prepend-bos"], o, e);
        Assert.Equal(0, rc);
        Assert.Equal("1 403 407 261 378", o.ToString().Trim());
        o = new StringWriter();
        rc = SaeSharp.Cli.Program.Run(["tokenize", "--tokenizer", dir, "--text", "Once", "--show"], o, e);
        Assert.Equal(0, rc);
        Assert.Contains("403\t\"▁Once\"", o.ToString());
    }

    [Fact]
    public void Tokenize_NeedsTextOrFile()
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        int rc = SaeSharp.Cli.Program.Run(["tokenize", "--tokenizer", "/no/such/tokenizer"], o, e);
        Assert.Equal(1, rc);
        Assert.Contains("--text or --file", e.ToString());
    }
}
