using System.Text;
using System.Text.Json;

namespace SaeSharp.Text;

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
