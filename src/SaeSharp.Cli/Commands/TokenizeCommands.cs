using System.CommandLine;
using SaeSharp.Text;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp tokenize`: encode text with a tokenizer folder or file and print the ids.</summary>
public static class TokenizeCommands
{
    public static Command Build()
    {
        var cmd = new Command("tokenize", "Encode text to token ids (tokenizer.json, tok512.bin or encoder.json + vocab.bpe)");
        var tokenizer = new Option<string>("--tokenizer") { Description = "Model folder or tokenizer file", Required = true };
        var text = new Option<string?>("--text") { Description = "Text to encode" };
        var file = new Option<string?>("--file") { Description = "UTF-8 file whose contents are encoded" };
        var bos = new Option<bool>("--prepend-bos") { Description = "Prepend the BOS token" };
        var show = new Option<bool>("--show") { Description = "Print one line per token: id and its text" };
        cmd.Add(tokenizer);
        cmd.Add(text);
        cmd.Add(file);
        cmd.Add(bos);
        cmd.Add(show);
        cmd.SetAction(p => Run(p.GetValue(tokenizer)!, p.GetValue(text), p.GetValue(file), p.GetValue(bos), p.GetValue(show),
            p.InvocationConfiguration.Output));
        return cmd;
    }

    // Token text quoted as JSON so spaces and control characters are visible; non-ASCII left readable.
    private static readonly System.Text.Json.JsonSerializerOptions Quoted = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static int Run(string tokenizerPath, string? text, string? file, bool bos, bool show, TextWriter output)
    {
        if ((text is null) == (file is null)) throw new ArgumentException("give exactly one of --text or --file");
        if (file is not null && !File.Exists(file)) throw new FileNotFoundException($"--file not found: {file}", file);
        var input = text ?? File.ReadAllText(file!);
        var tok = Tokenizers.Load(tokenizerPath);
        var ids = tok.Encode(input, bos);
        if (show)
        {
            foreach (var id in ids)
                output.WriteLine($"{id}\t{System.Text.Json.JsonSerializer.Serialize(tok.TokenText(id), Quoted)}");
            output.WriteLine($"{ids.Length} tokens");
        }
        else output.WriteLine(string.Join(' ', ids));
        return 0;
    }
}
