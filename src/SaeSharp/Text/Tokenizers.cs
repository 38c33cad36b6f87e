using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SaeSharp.Text;

/// <summary>Text ↔ token ids.</summary>
public interface ITokenizer
{
    int[] Encode(string text, bool addBos = false);
    string Decode(ReadOnlySpan<int> ids);
    /// <summary>The vocabulary string of one token (as stored, e.g. "Ġthe" or "▁the").</summary>
    string TokenText(int id);
    int VocabSize { get; }
    int? BosId { get; }
    int? EosId { get; }
    int? PadId { get; }
}

public static class Tokenizers
{
    /// <summary>
    /// Loads a tokenizer from a model folder (tokenizer.json, else tok512.bin / tokenizer.bin, else
    /// encoder.json + vocab.bpe) or from one of those files.
    /// </summary>
    /// <summary>
    /// The tokenizer of a model: from its folder (a Hugging Face model) or the folder beside it (a llama2.c .bin).
    /// A model path that does not exist is reported as a missing model, not as a folder without a tokenizer.
    /// </summary>
    public static ITokenizer ForModel(string modelPath)
    {
        if (Directory.Exists(modelPath)) return Load(modelPath);
        if (File.Exists(modelPath)) return Load(Path.GetDirectoryName(Path.GetFullPath(modelPath))!);
        throw new FileNotFoundException($"model not found: {modelPath}", modelPath);
    }

    public static ITokenizer Load(string path)
    {
        if (Directory.Exists(path))
        {
            var tj = Path.Combine(path, "tokenizer.json");
            if (File.Exists(tj)) return HfTokenizerJson.Load(tj);
            foreach (var name in new[] { "tok512.bin", "tokenizer.bin" })
            {
                var b = Path.Combine(path, name);
                if (File.Exists(b)) return Llama2cTokenizer.Load(b);
            }
            var enc = Path.Combine(path, "encoder.json");
            var bpe = Path.Combine(path, "vocab.bpe");
            if (File.Exists(enc) && File.Exists(bpe)) return ByteLevelBpeTokenizer.LoadGpt2Files(enc, bpe);
            throw new FileNotFoundException($"{path}: no tokenizer found (expected tokenizer.json, tok512.bin, tokenizer.bin or encoder.json + vocab.bpe)");
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        var file = Path.GetFileName(path);
        if (file.Equals("encoder.json", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".bpe", StringComparison.OrdinalIgnoreCase))
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            var enc = Path.Combine(dir, "encoder.json");
            var bpe = Path.Combine(dir, "vocab.bpe");
            if (!File.Exists(enc)) throw new FileNotFoundException($"{enc}: encoder.json not found next to {path}", enc);
            if (!File.Exists(bpe)) throw new FileNotFoundException($"{bpe}: vocab.bpe not found next to {path}", bpe);
            return ByteLevelBpeTokenizer.LoadGpt2Files(enc, bpe);
        }
        if (file.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return HfTokenizerJson.Load(path);
        if (file.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return Llama2cTokenizer.Load(path);
        throw new InvalidDataException($"{path}: unknown tokenizer file type (expected tokenizer.json, *.bin, encoder.json or vocab.bpe)");
    }
}

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

/// <summary>Applies BPE merges by rank to a list of symbols; lowest rank first, leftmost on ties.</summary>
internal static class BpeMerge
{
    public static List<string> Apply(List<string> symbols, Dictionary<(string, string), int> ranks)
    {
        while (symbols.Count > 1)
        {
            int best = int.MaxValue, at = -1;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out var r) && r < best) { best = r; at = i; }
            if (at < 0) break;
            var (a, b) = (symbols[at], symbols[at + 1]);
            // Merge every non-overlapping occurrence of this pair, left to right (same result as one at a time).
            var next = new List<string>(symbols.Count);
            for (int i = 0; i < symbols.Count; i++)
            {
                if (i + 1 < symbols.Count && symbols[i] == a && symbols[i + 1] == b) { next.Add(a + b); i++; }
                else next.Add(symbols[i]);
            }
            symbols = next;
        }
        return symbols;
    }

    /// <summary>Splits the text into added-token matches (id) and plain segments (null id), longest token first.</summary>
    public static List<(string Text, int? Id)> SplitAdded(string text, IReadOnlyList<(string Content, int Id)> added)
    {
        var result = new List<(string, int?)>();
        if (added.Count == 0) { result.Add((text, null)); return result; }
        int start = 0, pos = 0;
        while (pos < text.Length)
        {
            int matchId = -1, matchLen = 0;
            // Indexed, not foreach: an interface enumerator per character would allocate tens of bytes per character.
            for (int a = 0; a < added.Count; a++)
            {
                var (content, id) = added[a];
                if (content.Length > matchLen && string.CompareOrdinal(text, pos, content, 0, content.Length) == 0) { matchId = id; matchLen = content.Length; }
            }
            if (matchLen > 0)
            {
                if (pos > start) result.Add((text[start..pos], null));
                result.Add((text.Substring(pos, matchLen), matchId));
                pos += matchLen; start = pos;
            }
            else pos++;
        }
        if (start < text.Length) result.Add((text[start..], null));
        return result;
    }
}

/// <summary>GPT-2 style byte-level BPE (tokenizer.json with ByteLevel, or encoder.json + vocab.bpe).</summary>
public sealed class ByteLevelBpeTokenizer : ITokenizer
{
    private static readonly Regex Gpt2Pattern = new(
        @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled | RegexOptions.CultureInvariant);
    private static readonly char[] ByteToChar = BuildByteMap();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, (byte)b)).ToDictionary(t => t.c, t => t.Item2);

    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly List<(string Content, int Id)> _added;
    private readonly HashSet<int> _specialIds;
    private readonly Dictionary<string, int[]> _cache = new();
    private readonly object _lock = new();
    private readonly string _source;

    public int VocabSize => _idToToken.Length;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId => null;

    internal ByteLevelBpeTokenizer(string source, Dictionary<string, int> vocab, Dictionary<(string, string), int> ranks, List<(string, int)> added)
    {
        _source = source;
        _vocab = vocab;
        _ranks = ranks;
        _added = added;
        foreach (var (c, id) in added) _vocab.TryAdd(c, id);
        int max = _vocab.Count == 0 ? -1 : _vocab.Values.Max();
        _idToToken = new string[max + 1];
        foreach (var (t, id) in _vocab)
        {
            if (id < 0) throw new InvalidDataException($"{source}: vocab id {id} for '{t}' is negative");
            _idToToken[id] = t;
        }
        for (int i = 0; i < _idToToken.Length; i++) _idToToken[i] ??= "";
        _specialIds = added.Select(a => a.Item2).ToHashSet();
        if (_vocab.TryGetValue("<|endoftext|>", out var eot)) { BosId = eot; EosId = eot; }
    }

    /// <summary>Loads OpenAI's encoder.json (token → id) and vocab.bpe (merges, highest priority first).</summary>
    public static ByteLevelBpeTokenizer LoadGpt2Files(string encoderJson, string vocabBpe)
    {
        Dictionary<string, int> vocab;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(encoderJson));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{encoderJson}: expected a JSON object token → id");
            vocab = HfTokenizerJson.ReadVocab(doc.RootElement, encoderJson, "token");
        }
        catch (JsonException e) { throw new InvalidDataException($"{encoderJson}: invalid JSON ({e.Message})", e); }
        var ranks = new Dictionary<(string, string), int>();
        var lines = File.ReadAllLines(vocabBpe, Encoding.UTF8);
        int rank = 0;
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.StartsWith("#version", StringComparison.Ordinal) || line.Length == 0) continue;
            var sp = line.Split(' ');
            if (sp.Length != 2) throw new InvalidDataException($"{vocabBpe}: line {i + 1} is not 'left right': '{line}'");
            ranks.TryAdd((sp[0], sp[1]), rank++);
        }
        var added = new List<(string, int)>();
        if (vocab.TryGetValue("<|endoftext|>", out var eot)) added.Add(("<|endoftext|>", eot));
        return new ByteLevelBpeTokenizer(encoderJson, vocab, ranks, added);
    }

    private static char[] BuildByteMap()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    public int[] Encode(string text, bool addBos = false)
    {
        var ids = new List<int>();
        if (addBos && BosId is int bos) ids.Add(bos);
        foreach (var (seg, id) in BpeMerge.SplitAdded(text, _added))
        {
            if (id is int sid) { ids.Add(sid); continue; }
            // Enumerated, not collected: a 50 MB line would otherwise hold millions of Match objects at once.
            foreach (var m in Gpt2Pattern.EnumerateMatches(seg)) ids.AddRange(EncodeWord(seg.Substring(m.Index, m.Length)));
        }
        return ids.ToArray();
    }

    private int[] EncodeWord(string word)
    {
        lock (_lock) if (_cache.TryGetValue(word, out var hit)) return hit;
        var bytes = Encoding.UTF8.GetBytes(word);
        var symbols = new List<string>(bytes.Length);
        foreach (var b in bytes) symbols.Add(ByteToChar[b].ToString());
        symbols = BpeMerge.Apply(symbols, _ranks);
        var ids = new int[symbols.Count];
        for (int i = 0; i < ids.Length; i++)
            if (!_vocab.TryGetValue(symbols[i], out ids[i]))
                throw new InvalidDataException($"{_source}: BPE produced '{symbols[i]}', which is not in the vocabulary");
        lock (_lock) { if (_cache.Count < 100_000) _cache[word] = ids; }
        return ids;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            var t = TokenText(id);
            if (_specialIds.Contains(id)) { bytes.AddRange(Encoding.UTF8.GetBytes(t)); continue; }
            foreach (var c in t)
            {
                if (CharToByte.TryGetValue(c, out var b)) bytes.Add(b);
                else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    public string TokenText(int id)
    {
        if ((uint)id >= (uint)_idToToken.Length) throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} outside vocabulary of {_idToToken.Length}");
        return _idToToken[id];
    }
}

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

/// <summary>
/// Reads a Hugging Face tokenizer.json with a BPE model (byte-level or sentencepiece-style). Anything the two
/// tokenizers here would not reproduce (other pre-tokenizers or normalizers, ids that clash or leave huge gaps) is
/// refused with the file and the field named, rather than silently encoding differently from Hugging Face.
/// </summary>
public static class HfTokenizerJson
{
    /// <summary>Token ids at or above this are refused: the id → token table is allocated up to the largest id.</summary>
    public const int MaxTokenId = 1 << 24;

    public static ITokenizer Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON ({e.Message})", e); }
        using (doc)
        {
            var root = doc.RootElement;
            InvalidDataException Bad(string problem) => new($"{path}: {problem}");
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw Bad("expected an object with a 'model' field");
            var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            if (type != "BPE") throw Bad($"model.type is '{type}', only 'BPE' is supported");
            if (!model.TryGetProperty("vocab", out var vocabEl) || vocabEl.ValueKind != JsonValueKind.Object)
                throw Bad("model.vocab missing or not an object");
            var vocab = ReadVocab(vocabEl, path, "model.vocab");
            if (vocab.Count == 0) throw Bad("model.vocab is empty");
            var ranks = new Dictionary<(string, string), int>();
            if (model.TryGetProperty("merges", out var merges) && merges.ValueKind == JsonValueKind.Array)
            {
                int rank = 0;
                foreach (var m in merges.EnumerateArray())
                {
                    (string, string) pair;
                    if (m.ValueKind == JsonValueKind.String)
                    {
                        var str = m.GetString()!;
                        int sp = str.Length > 1 ? str.IndexOf(' ', 1) : -1;
                        if (sp < 0) throw Bad($"model.merges[{rank}] '{str}' is not 'left right'");
                        pair = (str[..sp], str[(sp + 1)..]);
                    }
                    else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                        pair = (m[0].GetString()!, m[1].GetString()!);
                    else throw Bad($"model.merges[{rank}] is neither a 'left right' string nor a pair of strings");
                    ranks.TryAdd(pair, rank++);
                }
            }
            var added = ReadAddedTokens(root, vocab, Bad);

            bool byteLevel = HasType(root, "pre_tokenizer", "ByteLevel");
            if (byteLevel)
            {
                CheckByteLevelPreTokenizer(root.GetProperty("pre_tokenizer"), Bad);
                if (root.TryGetProperty("normalizer", out var bn) && bn.ValueKind != JsonValueKind.Null)
                    throw Bad($"normalizer '{TypeOf(bn, Bad, "normalizer")}' is not supported for byte-level BPE (only null, as GPT-2)");
                return new ByteLevelBpeTokenizer(path, vocab, ranks, added);
            }
            if (HasType(root, "decoder", "ByteLevel"))
            {
                if (root.TryGetProperty("pre_tokenizer", out var other) && other.ValueKind != JsonValueKind.Null) CheckByteLevelPreTokenizer(other, Bad);
                throw Bad("the decoder is ByteLevel but there is no ByteLevel pre_tokenizer, which byte-level BPE needs");
            }

            string prepend = "";
            var repl = new List<(string, string)>();
            if (root.TryGetProperty("normalizer", out var norm) && norm.ValueKind == JsonValueKind.Object)
                foreach (var n in Flatten(norm, "normalizers"))
                {
                    var nt = TypeOf(n, Bad, "normalizer");
                    if (nt == "Prepend" && n.TryGetProperty("prepend", out var pp) && pp.ValueKind == JsonValueKind.String) prepend = pp.GetString()!;
                    else if (nt == "Replace" && n.TryGetProperty("pattern", out var pat) && pat.ValueKind == JsonValueKind.Object
                             && pat.TryGetProperty("String", out var from) && from.ValueKind == JsonValueKind.String
                             && n.TryGetProperty("content", out var to) && to.ValueKind == JsonValueKind.String)
                        repl.Add((from.GetString()!, to.GetString()!));
                    else throw Bad($"normalizer '{nt}' is not supported (expected Prepend and Replace of a plain string)");
                }
            if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind != JsonValueKind.Null)
                throw Bad($"pre_tokenizer '{TypeOf(pre, Bad, "pre_tokenizer")}' is not supported for sentencepiece-style BPE (expected null)");
            int strip = 0;
            if (root.TryGetProperty("decoder", out var dec) && dec.ValueKind == JsonValueKind.Object)
                foreach (var d in Flatten(dec, "decoders"))
                    if (TypeOf(d, Bad, "decoder") == "Strip" && d.TryGetProperty("start", out var st))
                        strip = st.ValueKind == JsonValueKind.Number && st.TryGetInt32(out int k) && k >= 0 ? k : throw Bad($"decoder Strip 'start' must be a non-negative integer, got {st}");
            string? unk = model.TryGetProperty("unk_token", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() : null;
            return new SentencePieceBpeTokenizer(path, vocab, ranks, added, prepend, repl.ToArray(), unk, strip);
        }
    }

    /// <summary>
    /// token → id from a JSON object (tokenizer.json model.vocab, GPT-2 encoder.json): ids are integers in
    /// [0, <see cref="MaxTokenId"/>), no two tokens share one, and no token is listed twice.
    /// </summary>
    internal static Dictionary<string, int> ReadVocab(JsonElement obj, string path, string field)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var byId = new Dictionary<int, string>();
        foreach (var p in obj.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt64(out long id) || id < 0 || id >= MaxTokenId)
                throw new InvalidDataException($"{path}: {field}['{p.Name}'] = {p.Value.GetRawText()} is not an integer id in [0, {MaxTokenId})");
            if (!vocab.TryAdd(p.Name, (int)id)) throw new InvalidDataException($"{path}: {field} lists '{p.Name}' twice");
            if (!byId.TryAdd((int)id, p.Name))
                throw new InvalidDataException($"{path}: {field} gives id {id} to both '{byId[(int)id]}' and '{p.Name}'");
        }
        return vocab;
    }

    private static List<(string, int)> ReadAddedTokens(JsonElement root, Dictionary<string, int> vocab, Func<string, InvalidDataException> bad)
    {
        var added = new List<(string, int)>();
        if (!root.TryGetProperty("added_tokens", out var at) || at.ValueKind == JsonValueKind.Null) return added;
        if (at.ValueKind != JsonValueKind.Array) throw bad("added_tokens is not an array");
        var vocabById = vocab.ToDictionary(kv => kv.Value, kv => kv.Key);
        var seen = new Dictionary<int, string>();
        int i = 0;
        foreach (var a in at.EnumerateArray())
        {
            string where = $"added_tokens[{i++}]";
            if (a.ValueKind != JsonValueKind.Object) throw bad($"{where} is not an object with 'id' and 'content'");
            if (!a.TryGetProperty("id", out var idEl) || idEl.ValueKind != JsonValueKind.Number || !idEl.TryGetInt64(out long id) || id < 0 || id >= MaxTokenId)
                throw bad($"{where}: 'id' must be an integer in [0, {MaxTokenId}), got {(a.TryGetProperty("id", out var x) ? x.GetRawText() : "nothing")}");
            if (!a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                throw bad($"{where}: 'content' must be a string");
            string content = c.GetString()!;
            // A special token usually repeats a vocab entry with the same id; a different id would make encode and decode disagree.
            if (vocab.TryGetValue(content, out int vid) && vid != id)
                throw bad($"{where}: '{content}' has id {id}, but model.vocab gives it id {vid}");
            if (vocabById.TryGetValue((int)id, out var other) && other != content)
                throw bad($"{where}: id {id} of '{content}' is already the id of vocab token '{other}'");
            if (seen.TryGetValue((int)id, out var prev) && prev != content)
                throw bad($"{where}: id {id} of '{content}' is already the id of added token '{prev}'");
            seen[(int)id] = content;
            added.Add((content, (int)id));
        }
        return added;
    }

    /// <summary>Only GPT-2's pre-tokenizer is reproduced: ByteLevel with its regex and no prefix space, nothing else in the sequence.</summary>
    private static void CheckByteLevelPreTokenizer(JsonElement pre, Func<string, InvalidDataException> bad)
    {
        foreach (var p in Flatten(pre, "pretokenizers"))
        {
            string type = TypeOf(p, bad, "pre_tokenizer");
            if (type != "ByteLevel")
                throw bad($"pre_tokenizer '{type}' is not supported (byte-level BPE here applies GPT-2's ByteLevel split only)");
            if (p.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                throw bad("pre_tokenizer ByteLevel with add_prefix_space true is not supported");
            if (p.TryGetProperty("use_regex", out var ur) && ur.ValueKind == JsonValueKind.False)
                throw bad("pre_tokenizer ByteLevel with use_regex false is not supported (the text would not be split as GPT-2 splits it)");
        }
    }

    private static string TypeOf(JsonElement e, Func<string, InvalidDataException> bad, string field) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()! : throw bad($"{field}: expected an object with a string 'type', got {e.GetRawText()}");

    private static bool HasType(JsonElement root, string field, string type)
    {
        if (!root.TryGetProperty(field, out var el) || el.ValueKind != JsonValueKind.Object) return false;
        return Flatten(el, field == "decoder" ? "decoders" : "pretokenizers").Any(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == type);
    }

    private static IEnumerable<JsonElement> Flatten(JsonElement el, string listField)
    {
        if (el.ValueKind == JsonValueKind.Object && el.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "Sequence"
            && el.TryGetProperty(listField, out var list) && list.ValueKind == JsonValueKind.Array)
            foreach (var x in list.EnumerateArray()) foreach (var y in Flatten(x, listField)) yield return y;
        else yield return el;
    }
}

/// <summary>llama2.c tokenizer (tok512.bin / tokenizer.bin), encoding exactly like llama2.c's encode().</summary>
public sealed class Llama2cTokenizer : ITokenizer
{
    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _lookup = new();

    public int MaxTokenLength { get; }
    public int VocabSize => _pieces.Length;
    public int? BosId => 1;
    public int? EosId => 2;
    public int? PadId => null;

    private Llama2cTokenizer(string[] pieces, float[] scores, int maxLen)
    {
        _pieces = pieces; _scores = scores; MaxTokenLength = maxLen;
        // First occurrence wins, like a sorted-vocab bsearch on unique strings.
        for (int i = 0; i < pieces.Length; i++) _lookup.TryAdd(pieces[i], i);
    }

    /// <summary>Reads the file; the vocabulary size is however many tokens it holds.</summary>
    public static Llama2cTokenizer Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        var data = File.ReadAllBytes(path);
        if (data.Length < 4) throw new InvalidDataException($"{path}: truncated: {data.Length} bytes, expected int32 max_token_length");
        int maxLen = BitConverter.ToInt32(data, 0);
        if (maxLen <= 0 || maxLen > 1 << 16) throw new InvalidDataException($"{path}: max_token_length {maxLen} is not plausible");
        var pieces = new List<string>();
        var scores = new List<float>();
        int pos = 4;
        while (pos < data.Length)
        {
            if (pos + 8 > data.Length) throw new InvalidDataException($"{path}: truncated in token {pieces.Count}: header needs 8 bytes at offset {pos}, file has {data.Length}");
            float score = BitConverter.ToSingle(data, pos);
            int len = BitConverter.ToInt32(data, pos + 4);
            pos += 8;
            if (len < 0 || len > maxLen) throw new InvalidDataException($"{path}: token {pieces.Count} length {len} outside 0..{maxLen}");
            if (pos + len > data.Length) throw new InvalidDataException($"{path}: truncated in token {pieces.Count}: needs {len} bytes at offset {pos}, file has {data.Length}");
            pieces.Add(Encoding.UTF8.GetString(data, pos, len));
            scores.Add(score);
            pos += len;
        }
        if (pieces.Count < 259) throw new InvalidDataException($"{path}: only {pieces.Count} tokens; expected at least 259 (specials + 256 byte tokens)");
        return new Llama2cTokenizer(pieces.ToArray(), scores.ToArray(), maxLen);
    }

    public float Score(int id) => _scores[id];

    public int[] Encode(string text, bool addBos = false)
    {
        var tokens = new List<int>();
        if (addBos) tokens.Add(1);
        if (text.Length > 0)
        {
            if (!_lookup.TryGetValue(" ", out var dummy)) throw new InvalidOperationException("llama2.c tokenizer has no ' ' piece for the dummy prefix");
            tokens.Add(dummy);
        }
        // Per code point: its piece if present, else one byte token per UTF-8 byte (id = byte + 3).
        for (int i = 0; i < text.Length;)
        {
            int n = char.IsSurrogatePair(text, i) ? 2 : 1;
            var cp = text.Substring(i, n);
            i += n;
            if (_lookup.TryGetValue(cp, out var id)) tokens.Add(id);
            else foreach (var b in Encoding.UTF8.GetBytes(cp)) tokens.Add(b + 3);
        }
        int start = addBos ? 1 : 0;
        while (true)
        {
            float best = float.NegativeInfinity;
            int bestId = -1, bestAt = -1;
            for (int i = start; i + 1 < tokens.Count; i++)
            {
                if (_lookup.TryGetValue(_pieces[tokens[i]] + _pieces[tokens[i + 1]], out var id) && _scores[id] > best)
                { best = _scores[id]; bestId = id; bestAt = i; }
            }
            if (bestAt < 0) break;
            tokens[bestAt] = bestId;
            tokens.RemoveAt(bestAt + 1);
        }
        return tokens.ToArray();
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        bool first = true;
        foreach (var id in ids)
        {
            if (id == 1 || id == 2) continue;
            var p = TokenText(id);
            if (p.Length == 6 && p.StartsWith("<0x", StringComparison.Ordinal) && p[5] == '>' && id >= 3 && id < 259)
                bytes.Add((byte)(id - 3));
            else
            {
                // The dummy-prefix space encode() adds is removed from the first piece.
                if (first && p.StartsWith(' ')) p = p[1..];
                bytes.AddRange(Encoding.UTF8.GetBytes(p));
            }
            first = false;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    public string TokenText(int id)
    {
        if ((uint)id >= (uint)_pieces.Length) throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} outside vocabulary of {_pieces.Length}");
        return _pieces[id];
    }
}
