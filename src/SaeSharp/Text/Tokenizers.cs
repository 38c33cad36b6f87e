namespace SaeSharp.Text;

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
