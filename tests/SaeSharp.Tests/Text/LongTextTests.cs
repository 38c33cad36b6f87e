using SaeSharp.Text;

namespace SaeSharp.Tests.Text;

/// <summary>A document that is one very long line (a 50 MB .txt without newlines) encodes in memory linear in its length.</summary>
public class LongTextTests
{
    private const string Stories = "models/stories260K/tokenizer.json";
    private const string Gpt2 = "tokenizers/gpt2/tokenizer.json";
    private const string Corpus = "corpora/tinystories_validation_head.txt";

    [SharedTheory(Stories, Gpt2, Corpus)]
    [InlineData(Stories)]
    [InlineData(Gpt2)]
    public void OneLongLineEncodesLikeItsWordsAndAllocatesLinearly(string file)
    {
        var tok = Tokenizers.Load(SharedData.Path(file));
        string text = File.ReadAllText(SharedData.Path(Corpus)).Replace('\n', ' ');
        var ids = tok.Encode(text);
        Assert.Equal(text, tok.Decode(ids));
        // Split at a space, the halves encode to the same ids: words are encoded on their own.
        int cut = text.IndexOf(' ', text.Length / 2);
        Assert.Equal(ids, tok.Encode(text[..cut]).Concat(EncodeTail(tok, text[cut..])).ToArray());
        // Encoding again (every word now cached) allocates a few bytes per character: the ids and one short string per
        // word. Whole-text merging allocated a symbol list per merge (quadratic in the length), and collecting the
        // GPT-2 regex matches cost ~85 bytes per character (a 51 MB line took 4.75 GB).
        long before = GC.GetAllocatedBytesForCurrentThread();
        tok.Encode(text);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 24L * text.Length, $"{allocated:N0} bytes allocated for {text.Length:N0} characters");
    }

    /// <summary>Ids of a text that continues another (sentencepiece adds its ▁ prefix at the start of a text only).</summary>
    private static int[] EncodeTail(ITokenizer tok, string tail) =>
        tok is SentencePieceBpeTokenizer ? tok.Encode("a" + tail)[1..] : tok.Encode(tail);
}
