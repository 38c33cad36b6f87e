using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SaeSharp.Text;

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
