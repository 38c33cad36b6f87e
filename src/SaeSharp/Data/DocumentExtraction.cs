using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Data;

/// <summary>One document's metadata row in metadata.json.</summary>
public sealed record DocumentSample(
    [property: JsonPropertyName("sample_index")] int SampleIndex,
    [property: JsonPropertyName("text"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Text,
    [property: JsonPropertyName("token_ids")] int[] TokenIds,
    [property: JsonPropertyName("position")] int Position);

public sealed record DocumentMetadata(
    [property: JsonPropertyName("hooks")] string[] Hooks,
    [property: JsonPropertyName("d_in")] int DIn,
    [property: JsonPropertyName("samples")] List<DocumentSample> Samples);

/// <summary>
/// drrik-style extraction: one activation per document, taken at its last real (non-pad) token, from one or more
/// hooks concatenated along features. Saved as activations.npy [n_docs, d] plus metadata.json.
/// </summary>
public static class DocumentExtraction
{
    public const int TextPreviewChars = 200;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Index of the last token that is not <paramref name="pad"/>; -1 when the whole row is padding.</summary>
    public static int LastRealIndex(ReadOnlySpan<int> ids, int? pad)
    {
        if (pad is not int p) return ids.Length - 1;
        for (int i = ids.Length - 1; i >= 0; i--) if (ids[i] != p) return i;
        return -1;
    }

    /// <summary>
    /// Runs every document (in batches) and takes each hook's activation at its last real token. A document longer than
    /// the model's context is cut to its first positions (the activation is then the last kept token's), reported once
    /// through <paramref name="warn"/>.
    /// </summary>
    public static (Tensor Acts, DocumentMetadata Meta) Extract(HookedTransformer model, IReadOnlyList<string> hooks,
        IReadOnlyList<int[]> documents, IReadOnlyList<string?>? texts = null, int? padToken = null, int batchSize = 8, Action<string>? warn = null,
        CancellationToken cancel = default)
    {
        int context = model.Config.MaxPositions, truncated = 0, longest = 0;
        if (hooks.Count == 0) throw new ArgumentException("at least one hook is needed");
        if (texts is not null && texts.Count != documents.Count) throw new ArgumentException($"{texts.Count} texts for {documents.Count} documents");
        foreach (var h in hooks) if (!model.HookNames.Contains(h)) throw new ArgumentException($"unknown hook '{h}'");
        var widths = hooks.Select(h => ActivationStore.Width(model, h)).ToArray();
        int d = widths.Sum();
        var acts = new Tensor(documents.Count, d);
        var samples = new List<DocumentSample>(documents.Count);
        for (int start = 0; start < documents.Count; start += batchSize)
        {
            if (cancel.IsCancellationRequested)
                throw new OperationCanceledException($"extract stopped after {start} of {documents.Count} documents; nothing was written "
                    + "(activations.npy and metadata.json are written once every document is done)", cancel);
            var batch = new List<int[]>();
            var kept = new List<int[]>();
            var pos = new List<int>();
            for (int i = start; i < Math.Min(documents.Count, start + batchSize); i++)
            {
                var doc = documents[i];
                if (doc.Length > context)
                {
                    truncated++;
                    longest = Math.Max(longest, doc.Length);
                    doc = doc[..context];
                }
                int last = LastRealIndex(doc, padToken);
                if (last < 0) throw new ArgumentException($"document {i} has no non-pad tokens");
                // Causal attention: tokens after the last real one cannot change it, so run only the prefix.
                batch.Add(doc[..(last + 1)]);
                kept.Add(doc);
                pos.Add(last);
            }
            var outp = model.RunBatch(batch, hooks.ToArray(), returnLogits: false);
            int t = batch.Max(s => s.Length);
            for (int b = 0; b < batch.Count; b++)
            {
                int col = 0;
                for (int h = 0; h < hooks.Count; h++)
                {
                    outp.Cache[hooks[h]].Span.Slice((b * t + pos[b]) * widths[h], widths[h]).CopyTo(acts.Row(start + b).Slice(col));
                    col += widths[h];
                }
                // drrik keeps the first 200 characters of each document's text.
                string? text = texts?[start + b];
                samples.Add(new DocumentSample(start + b, text is { Length: > TextPreviewChars } ? text[..TextPreviewChars] : text, kept[b], pos[b]));
            }
        }
        if (truncated > 0)
            warn?.Invoke($"{truncated} of {documents.Count} documents are longer than the model's {context} positions; each was cut to its first {context} tokens (the longest had {longest})");
        return (acts, new DocumentMetadata(hooks.ToArray(), d, samples));
    }

    public static void Save(string dir, Tensor acts, DocumentMetadata meta)
    {
        Directory.CreateDirectory(dir);
        Npy.Write(Path.Combine(dir, "activations.npy"), acts);
        AtomicFile.WriteAllText(Path.Combine(dir, "metadata.json"), JsonSerializer.Serialize(meta, Json));
    }

    public static (Tensor Acts, DocumentMetadata Meta) Load(string dir)
    {
        var mp = Path.Combine(dir, "metadata.json");
        if (!File.Exists(mp)) throw new FileNotFoundException($"'{mp}' does not exist");
        DocumentMetadata meta;
        try { meta = JsonSerializer.Deserialize<DocumentMetadata>(File.ReadAllText(mp), Json) ?? throw new InvalidDataException($"{mp}: empty"); }
        catch (JsonException e) { throw new InvalidDataException($"{mp}: invalid JSON: {e.Message}", e); }
        var acts = Npy.ReadFloat32(Path.Combine(dir, "activations.npy"));
        if (acts.Rank != 2 || acts.Rows != meta.Samples.Count || acts.Cols != meta.DIn)
            throw new InvalidDataException($"{dir}: activations.npy is [{acts.ShapeString}], metadata.json expects [{meta.Samples.Count}, {meta.DIn}]");
        return (acts, meta);
    }
}
