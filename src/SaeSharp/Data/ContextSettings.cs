namespace SaeSharp.Data;

/// <summary>
/// How documents become the model's context windows and how many go through the model at once (SAELens's
/// ActivationsStore names), shared by every job that runs a model over a dataset (train, cache, eval, analyze) so the
/// same key means the same thing everywhere.
/// </summary>
public sealed record ContextSettings
{
    /// <summary>Tokens per context window.</summary>
    public int ContextSize { get; set; } = 128;
    /// <summary>BOS begins every context window.</summary>
    public bool PrependBos { get; set; } = true;
    /// <summary>Token between concatenated documents: bos, eos, none or a token id.</summary>
    public string SequenceSeparatorToken { get; set; } = "bos";
    /// <summary>Context windows per model forward.</summary>
    public int StoreBatchSizePrompts { get; set; } = 32;

    public void Validate()
    {
        if (ContextSize < 2) throw new ArgumentException($"context_size must be at least 2, got {ContextSize}");
        if (StoreBatchSizePrompts < 1) throw new ArgumentException($"store_batch_size_prompts must be at least 1, got {StoreBatchSizePrompts}");
        if (string.IsNullOrWhiteSpace(SequenceSeparatorToken))
            throw new ArgumentException("sequence_separator_token must be bos, eos, none or a token id");
    }
}
