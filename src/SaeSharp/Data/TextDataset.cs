using System.Text.Json;
using SaeSharp.IO;

namespace SaeSharp.Data;

public enum TxtDocumentMode { Lines, BlankLineSeparated }

/// <summary>Reads documents from .txt / .jsonl files or a folder of them (sorted by name, non-recursive).</summary>
public static class TextDataset
{
    public static IEnumerable<string> Read(string path, TxtDocumentMode txtMode = TxtDocumentMode.Lines, string textField = "text")
    {
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path)
                .Where(f => f.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
                .OrderBy(f => f, StringComparer.Ordinal).ToArray();
            if (files.Length == 0) throw new FileNotFoundException($"folder '{path}' contains no .txt or .jsonl files");
            return files.SelectMany(f => ReadFile(f, txtMode, textField));
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"dataset '{path}' does not exist");
        return ReadFile(path, txtMode, textField);
    }

    /// <summary>Encodes documents lazily with any tokenizer's encode function.</summary>
    public static IEnumerable<int[]> Tokenize(IEnumerable<string> documents, Func<string, int[]> encode)
    {
        foreach (var d in documents) yield return encode(d);
    }

    public static IEnumerable<string> ReadFile(string file, TxtDocumentMode txtMode, string textField)
    {
        if (file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)) return ReadJsonl(file, textField);
        if (file.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)) return ReadTxt(file, txtMode);
        throw new ArgumentException($"dataset file '{file}': expected a .txt or .jsonl extension");
    }

    private static IEnumerable<string> ReadTxt(string file, TxtDocumentMode mode)
    {
        if (mode == TxtDocumentMode.Lines)
        {
            foreach (var line in File.ReadLines(file))
                if (line.Length > 0) yield return line;
            yield break;
        }
        var sb = new System.Text.StringBuilder();
        foreach (var line in File.ReadLines(file))
        {
            if (line.Trim().Length == 0)
            {
                if (sb.Length > 0) { yield return sb.ToString(); sb.Clear(); }
                continue;
            }
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(line);
        }
        if (sb.Length > 0) yield return sb.ToString();
    }

    private static IEnumerable<string> ReadJsonl(string file, string field)
    {
        int lineNo = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNo++;
            if (line.Trim().Length == 0) continue;
            string? text;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"{file}:{lineNo}: expected a JSON object");
                if (!doc.RootElement.TryGetProperty(field, out var el))
                    throw new InvalidDataException($"{file}:{lineNo}: missing text field '{field}'");
                if (el.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{file}:{lineNo}: field '{field}' is {el.ValueKind}, expected a string");
                text = el.GetString();
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{file}:{lineNo}: invalid JSON: {e.Message}", e);
            }
            yield return text ?? "";
        }
    }
}

/// <summary>
/// Pretokenized corpus: safetensors with "tokens" (I32 or I64, flat) and "doc_offsets" (I64, n_docs + 1,
/// starting at 0, ending at the token count) marking document boundaries.
/// </summary>
public static class TokenFile
{
    public static void Write(string path, IEnumerable<int[]> documents)
    {
        var docs = documents as IReadOnlyList<int[]> ?? documents.ToList();
        var offs = new long[docs.Count + 1];
        for (int i = 0; i < docs.Count; i++) offs[i + 1] = offs[i] + docs[i].Length;
        if (offs[^1] > Array.MaxLength) throw new ArgumentException($"{offs[^1]} tokens do not fit one token file (at most {Array.MaxLength})");
        // One array of exactly the token count, handed to the writer uncopied.
        var toks = GC.AllocateUninitializedArray<int>((int)offs[^1]);
        for (int i = 0; i < docs.Count; i++) docs[i].CopyTo(toks, (int)offs[i]);
        new SafetensorsWriter()
            .AddMetadata("format", "saesharp-tokens")
            .AddInt32Array("tokens", toks)
            .AddInt64("doc_offsets", offs, offs.Length)
            .Write(path);
    }

    public static List<int[]> Read(string path)
    {
        using var f = SafetensorsFile.Open(path);
        if (!f.Contains("tokens")) throw new InvalidDataException($"token file '{path}': missing tensor 'tokens'");
        var e = f.Entry("tokens");
        if (e.DType is not (DType.I32 or DType.I64) || e.Shape.Length != 1)
            throw new InvalidDataException($"token file '{path}': 'tokens' must be a 1-D I32 or I64 tensor, got {e.DType} {e.ShapeString}");
        int[] tokens = e.DType == DType.I32 ? f.ReadInt32("tokens") : f.ReadInt64("tokens").Select(v => checked((int)v)).ToArray();
        long[] offs = f.Contains("doc_offsets") ? f.ReadInt64("doc_offsets") : new long[] { 0, tokens.Length };
        if (offs.Length < 1 || offs[0] != 0 || offs[^1] != tokens.Length)
            throw new InvalidDataException($"token file '{path}': 'doc_offsets' must start at 0 and end at {tokens.Length}");
        var docs = new List<int[]>(offs.Length - 1);
        for (int i = 0; i + 1 < offs.Length; i++)
        {
            if (offs[i + 1] < offs[i]) throw new InvalidDataException($"token file '{path}': 'doc_offsets' decreases at index {i + 1}");
            docs.Add(tokens[(int)offs[i]..(int)offs[i + 1]]);
        }
        return docs;
    }
}
