namespace SaeSharp.Text;

/// <summary>
/// Turns generated tokens into text as they arrive. Each token is decoded after the prompt's last token, so what
/// depends on the token before it comes out right (a word's leading space, which sentencepiece and llama2.c decoders
/// strip at the start of a text; the bytes of a character split across tokens); <see cref="Push"/> returns only what
/// is new and complete.
/// </summary>
public sealed class TokenStreamDecoder
{
    private readonly ITokenizer _tokenizer;
    private readonly List<int> _ids = new();
    private readonly string _contextText;
    private string _shown = "";

    /// <param name="context">The token the continuation follows (the prompt's last), or null at the start of a text.</param>
    public TokenStreamDecoder(ITokenizer tokenizer, int? context)
    {
        _tokenizer = tokenizer;
        if (context is int c) _ids.Add(c);
        _contextText = tokenizer.Decode(_ids.ToArray());
        ContextTokens = _ids.Count;
    }

    private int ContextTokens { get; }

    /// <summary>The text of the continuation so far.</summary>
    public string Text => _shown;

    /// <summary>Adds one generated token; returns the text it completes (possibly empty).</summary>
    public string Push(int id)
    {
        _ids.Add(id);
        string all = _tokenizer.Decode(_ids.ToArray());
        // The context's own text is a prefix unless the new bytes merge with it into one character; then fall back.
        string text = all.StartsWith(_contextText, StringComparison.Ordinal) ? all[_contextText.Length..]
            : _tokenizer.Decode(_ids.ToArray().AsSpan(ContextTokens));
        // A character still missing bytes decodes as U+FFFD and changes once they arrive: hold it back until then.
        text = text.TrimEnd('\uFFFD');
        if (!text.StartsWith(_shown, StringComparison.Ordinal)) { _shown = text; return ""; }
        string added = text[_shown.Length..];
        _shown = text;
        return added;
    }
}
