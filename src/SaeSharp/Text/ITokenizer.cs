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

    /// <summary>
    /// Whether a document begins with a BOS of its own: sentencepiece-style tokenizers have one; GPT-2's BOS is its
    /// EOS, which ends documents and is not prepended.
    /// </summary>
    bool BeginsDocumentsWithBos => BosId is not null && BosId != EosId;

    /// <summary>A document or prompt as the model reads it: <see cref="BeginsDocumentsWithBos"/> decides the BOS.</summary>
    int[] EncodeDocument(string text) => Encode(text, BeginsDocumentsWithBos);
}
