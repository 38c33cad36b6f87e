using System.Text;

namespace SaeSharp.Text;

/// <summary>
/// Sentencepiece-style BPE from a tokenizer.json: "▁" prefix/space normalizer, the whole text one word,
/// merges by rank, byte-fallback &lt;0xNN&gt; pieces for characters outside the vocabulary.
/// </summary>
public sealed class SentencePieceBpeTokenizer : ITokenizer
{
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly List<(string Content, int Id)> _added;
    private readonly HashSet<int> _specialIds;
    private readonly int[] _byteIds = new int[256];
    private readonly string _prepend;
    private readonly (string From, string To)[] _replacements;
    private readonly int? _unkId;
    private readonly int _stripLeading;
    private readonly string _source;
    /// <summary>The character spaces become (▁); words split before it encode independently (null: the text is one word).</summary>
    private readonly char? _wordStart;
    private readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly object _lock = new();

    public int VocabSize => _idToToken.Length;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    internal SentencePieceBpeTokenizer(string source, Dictionary<string, int> vocab, Dictionary<(string, string), int> ranks,
        List<(string, int)> added, string prepend, (string, string)[] replacements, string? unk, int stripLeading)
    {
        _source = source; _vocab = vocab; _ranks = ranks; _added = added; _prepend = prepend; _replacements = replacements; _stripLeading = stripLeading;
        foreach (var (c, id) in added) _vocab.TryAdd(c, id);
        _idToToken = new string[_vocab.Values.Max() + 1];
        foreach (var (t, id) in _vocab) _idToToken[id] = t;
        for (int i = 0; i < _idToToken.Length; i++) _idToToken[i] ??= "";
        _specialIds = added.Select(a => a.Item2).ToHashSet();
        for (int b = 0; b < 256; b++) _byteIds[b] = _vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
        if (unk is not null && _vocab.TryGetValue(unk, out var u)) _unkId = u;
        if (_vocab.TryGetValue("<s>", out var bos)) BosId = bos;
        if (_vocab.TryGetValue("</s>", out var eos)) EosId = eos;
        if (_vocab.TryGetValue("<pad>", out var pad)) PadId = pad;
        // With no piece holding the space marker past its first character, no merge crosses a word start, so each word
        // merges on its own exactly as the whole text would (in linear time instead of quadratic, with a word cache).
        foreach (var (from, to) in replacements)
            if (from == " " && to.Length == 1 && !_vocab.Keys.Any(k => k.IndexOf(to[0], 1) >= 0) && !ranks.Keys.Any(r => r.Item2.Contains(to[0])))
                _wordStart = to[0];
    }

    public int[] Encode(string text, bool addBos = false)
    {
        var ids = new List<int>();
        if (addBos && BosId is int bos) ids.Add(bos);
        foreach (var (seg, id) in BpeMerge.SplitAdded(text, _added))
        {
            if (id is int sid) { ids.Add(sid); continue; }
            if (seg.Length == 0) continue;
            // Like Hugging Face, each segment between added tokens is normalized (and prefixed) on its own.
            if (_wordStart is char && _replacements.Length == 1)
            {
                // Normalised word by word (the one replacement maps a space to the marker), never as one copy of the text.
                for (int start = 0, i = 1; i <= seg.Length; i++)
                    if (i == seg.Length || seg[i] == ' ')
                    {
                        ids.AddRange(EncodeWord(Normalize(start == 0 ? _prepend + seg[..i] : seg[start..i])));
                        start = i;
                    }
                continue;
            }
            var s = Normalize(_prepend + seg);
            if (_wordStart is not char w) { ids.AddRange(EncodeWord(s)); continue; }
            for (int start = 0, i = 1; i <= s.Length; i++)
                if (i == s.Length || s[i] == w) { ids.AddRange(EncodeWord(s[start..i])); start = i; }
        }
        return ids.ToArray();
    }

    private string Normalize(string s)
    {
        foreach (var (from, to) in _replacements) s = s.Replace(from, to, StringComparison.Ordinal);
        return s;
    }

    private int[] EncodeWord(string word)
    {
        lock (_lock) if (_cache.TryGetValue(word, out var hit)) return hit;
        var symbols = new List<string>();
        for (int i = 0; i < word.Length; i += char.IsSurrogatePair(word, i) ? 2 : 1)
            symbols.Add(word.Substring(i, char.IsSurrogatePair(word, i) ? 2 : 1));
        var ids = new List<int>();
        foreach (var piece in BpeMerge.Apply(symbols, _ranks))
        {
            if (_vocab.TryGetValue(piece, out var pid)) { ids.Add(pid); continue; }
            foreach (var b in Encoding.UTF8.GetBytes(piece))
            {
                if (_byteIds[b] >= 0) ids.Add(_byteIds[b]);
                else if (_unkId is int u) ids.Add(u);
                else throw new InvalidDataException($"{_source}: '{piece}' is not in the vocabulary and there is no byte fallback or unk_token");
            }
        }
        var result = ids.ToArray();
        lock (_lock) { if (_cache.Count < 100_000 && word.Length <= 256) _cache[word] = result; }
        return result;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (_specialIds.Contains(id)) continue;
            var t = TokenText(id);
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>' && _byteIds[Convert.ToInt32(t.Substring(3, 2), 16)] == id)
            { bytes.Add(Convert.ToByte(t.Substring(3, 2), 16)); continue; }
            bytes.AddRange(Encoding.UTF8.GetBytes(t.Replace("▁", " ")));
        }
        var s = Encoding.UTF8.GetString(bytes.ToArray());
        for (int k = 0; k < _stripLeading && s.StartsWith(' '); k++) s = s[1..];
        return s;
    }

    public string TokenText(int id)
    {
        if ((uint)id >= (uint)_idToToken.Length) throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} outside vocabulary of {_idToToken.Length}");
        return _idToToken[id];
    }
}
