using System.Globalization;
using SaeSharp.Data;
using SaeSharp.Models;

namespace SaeSharp.Runs;

/// <summary>
/// Token input for commands that run a model (cache, extract, train --model): documents from a pretokenized
/// token file or a text dataset encoded with the model's own tokenizer, and their context windows.
/// </summary>
public static class ModelInputs
{
    /// <summary>
    /// Documents as token ids, lazily. <paramref name="addBos"/> prepends the tokenizer's BOS to each document
    /// (sentencepiece-style tokenizers only, where BOS differs from EOS).
    /// </summary>
    public static IEnumerable<int[]> Documents(string? tokensFile, string? dataset, string modelPath, bool addBos)
    {
        CheckSource(tokensFile, dataset);
        if (tokensFile is not null) return TokenFile.Read(tokensFile);
        var tokenizer = Text.Tokenizers.ForModel(modelPath);
        bool bos = addBos && tokenizer.BeginsDocumentsWithBos;
        return TextDataset.Tokenize(TextDataset.Read(dataset!), text => tokenizer.Encode(text, bos));
    }

    /// <summary>
    /// <see cref="Documents"/> with each document's text: the dataset's own, or for a token file (which has none) its
    /// tokens decoded with the model's tokenizer, or null when the model has no tokenizer.
    /// </summary>
    public static IEnumerable<(int[] Ids, string? Text)> DocumentsWithText(string? tokensFile, string? dataset, string modelPath, bool addBos)
    {
        CheckSource(tokensFile, dataset);
        if (tokensFile is not null)
        {
            Text.ITokenizer? decoder = null;
            try { decoder = Text.Tokenizers.ForModel(modelPath); }
            catch (FileNotFoundException) { }
            return TokenFile.Read(tokensFile).Select(ids => (ids, decoder?.Decode(ids)));
        }
        var tokenizer = Text.Tokenizers.ForModel(modelPath);
        bool bos = addBos && tokenizer.BeginsDocumentsWithBos;
        return TextDataset.Read(dataset!).Select(text => (tokenizer.Encode(text, bos), (string?)text));
    }

    private static void CheckSource(string? tokensFile, string? dataset)
    {
        if (tokensFile is not null && dataset is not null) throw new ArgumentException("give --tokens-file or --dataset, not both");
        if (tokensFile is not null) return;
        if (dataset is null) throw new ArgumentException("give --dataset (.txt/.jsonl/folder) or --tokens-file (pretokenized safetensors with a 'tokens' tensor)");
        if (!File.Exists(dataset) && !Directory.Exists(dataset)) throw new FileNotFoundException($"--dataset: '{dataset}' does not exist", dataset);
    }

    /// <summary>
    /// SAELens batching of documents into windows of context_size tokens: BOS begins every window when prepend_bos,
    /// and sequence_separator_token ("bos", "eos", "none" or a token id) goes between concatenated documents.
    /// </summary>
    public static IEnumerable<int[]> Contexts(IEnumerable<int[]> documents, TransformerConfig model, ContextSettings settings)
    {
        settings.Validate();
        if (settings.ContextSize > model.MaxPositions)
            throw new ArgumentException($"context_size {settings.ContextSize} is longer than the model's {model.MaxPositions} positions (its context length); use at most {model.MaxPositions}");
        int? bos = settings.PrependBos ? model.BosTokenId ?? throw new ArgumentException("prepend_bos: the model config has no bos_token_id") : null;
        return SequenceBatcher.ConcatAndBatch(documents, new BatchingOptions(settings.ContextSize, BeginBatchToken: bos,
            SequenceSeparatorToken: SpecialToken(settings.SequenceSeparatorToken, model, "sequence_separator_token")));
    }

    /// <summary>
    /// The context windows a job runs the model over: the documents of <paramref name="tokensFile"/> or
    /// <paramref name="dataset"/> batched by <see cref="Contexts"/>, whole windows up to <paramref name="tokens"/> tokens
    /// (0 = all). At least one window, or an error naming the data.
    /// </summary>
    public static List<int[]> ContextWindows(string? tokensFile, string? dataset, string modelPath, TransformerConfig model, ContextSettings settings, long tokens)
    {
        var docs = Documents(tokensFile, dataset, modelPath, addBos: false); // the batcher places BOS
        var windows = Contexts(docs, model, settings);
        if (tokens > 0) windows = windows.Take((int)Math.Min(int.MaxValue, tokens / settings.ContextSize));
        var contexts = windows.ToList();
        if (contexts.Count == 0)
            throw new InvalidDataException($"{dataset ?? tokensFile}: no context of {settings.ContextSize} tokens (the dataset holds fewer tokens than one context)");
        return contexts;
    }

    /// <summary>"bos", "eos", "none" or a token id, resolved against the model config.</summary>
    public static int? SpecialToken(string value, TransformerConfig model, string key) => value switch
    {
        "none" => null,
        "bos" => model.BosTokenId ?? throw new ArgumentException($"{key}: the model config has no bos_token_id"),
        "eos" => model.EosTokenId ?? throw new ArgumentException($"{key}: the model config has no eos_token_id"),
        _ when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int id) && id < model.VocabSize => id,
        _ => throw new ArgumentException($"{key}: expected bos, eos, none or a token id below {model.VocabSize}, got '{value}'"),
    };
}
