namespace SaeSharp.Text;

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
