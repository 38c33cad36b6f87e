using System.Text;

namespace SaeSharp.Text;

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
