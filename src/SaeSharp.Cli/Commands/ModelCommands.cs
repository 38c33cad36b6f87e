using System.CommandLine;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp generate ...`: continue a prompt of token ids with a loaded model.</summary>
public static class ModelCommands
{
    public static Command Build()
    {
        var cmd = new Command("generate", "Continue a prompt (token ids) with a Hugging Face folder or llama2.c .bin model; prints the new ids as they come");
        var model = new ModelOption("Model folder (config.json + model.safetensors) or llama2.c .bin file");
        var ids = new Option<string?>("--prompt-ids") { Description = "Prompt token ids separated by spaces or commas (include BOS if the model expects it); prints ids" };
        var text = new Option<string?>("--prompt") { Description = "Prompt text, encoded with the model's tokenizer (BOS added where the tokenizer has its own); prints text" };
        var tokenizerPath = new Option<string?>("--tokenizer") { Description = "Tokenizer file or folder (default: the model's folder)" };
        var max = new Option<int>("--max-tokens") { Description = "Number of new tokens at most", DefaultValueFactory = _ => 64 };
        var temp = new Option<float>("--temperature") { Description = "Sampling temperature; 0 is greedy", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Keep only the k most likely tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling: smallest set with this much probability (1 = all)", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the sampling RNG", DefaultValueFactory = _ => 0UL };
        var noStop = new Option<bool>("--no-stop") { Description = "Do not stop at the model's EOS token (llama2c sampler: its BOS)" };
        var samplerKind = new Option<string>("--sampler")
        {
            Description = "saesharp (seeded xoshiro, top-k and top-p) or llama2c (run.c's xorshift coin and top-p rule, stopping at BOS as run.c does: reproduces run.c -t/-p/-s)",
            DefaultValueFactory = _ => "saesharp",
        };
        model.AddTo(cmd); cmd.Add(ids); cmd.Add(text); cmd.Add(tokenizerPath); cmd.Add(max); cmd.Add(temp); cmd.Add(topK); cmd.Add(topP); cmd.Add(seed); cmd.Add(noStop); cmd.Add(samplerKind);
        cmd.SetAction(p =>
        {
            var output = p.InvocationConfiguration.Output;
            string modelPath = model.Resolve(p)!.Path;
            if ((p.GetValue(ids) is null) == (p.GetValue(text) is null)) throw new ArgumentException("give exactly one of --prompt (text) or --prompt-ids");
            // The model first: a wrong --model is then reported as such, not as a folder without a tokenizer.
            var m = HookedTransformer.Load(modelPath, Compute.All);
            SaeSharp.Text.ITokenizer? tokenizer = null;
            int[] prompt;
            if (p.GetValue(text) is { } promptText)
            {
                tokenizer = p.GetValue(tokenizerPath) is { } tp ? SaeSharp.Text.Tokenizers.Load(tp) : SaeSharp.Text.Tokenizers.ForModel(modelPath);
                prompt = tokenizer.EncodeDocument(promptText);
                if (prompt.Length == 0) throw new ArgumentException("--prompt: the text encodes to no tokens and the tokenizer has no BOS to start from");
            }
            else prompt = ParseIds(p.GetValue(ids)!);
            var sampling = new SamplingOptions { Temperature = p.GetValue(temp), TopK = p.GetValue(topK), TopP = p.GetValue(topP) };
            ITokenSampler sampler;
            int? stop;
            switch (p.GetValue(samplerKind))
            {
                case "saesharp":
                    sampling.Validate();
                    sampler = new RngSampler(sampling, new Rng(p.GetValue(seed)));
                    stop = m.Config.EosTokenId;
                    break;
                case "llama2c":
                    if (sampling.TopK != 0) throw new ArgumentException("--top-k: run.c's sampler has no top-k; leave it 0 with --sampler llama2c");
                    sampler = new Llama2cSampler(sampling.Temperature, sampling.TopP, p.GetValue(seed));
                    // run.c ends a sample when the model begins a new one (BOS); an EOS piece it prints.
                    stop = m.Config.BosTokenId;
                    break;
                case var other:
                    throw new ArgumentException($"--sampler: expected saesharp or llama2c, got '{other}'");
            }
            var options = new GenerationOptions { MaxNewTokens = p.GetValue(max), Sampling = sampling, StopToken = p.GetValue(noStop) ? null : stop };
            bool first = true;
            var decoder = tokenizer is null ? null : new SaeSharp.Text.TokenStreamDecoder(tokenizer, prompt[^1]);
            if (tokenizer is not null) output.Write(p.GetValue(text));
            m.Generate(prompt, sampler, options, t =>
            {
                // The stop token ends the text; it is not part of it.
                if (t == options.StopToken && decoder is not null) return;
                output.Write(decoder is null ? (first ? t.ToString() : " " + t) : decoder.Push(t));
                output.Flush();
                first = false;
            });
            output.WriteLine();
            return 0;
        });
        return cmd;
    }

    internal static int[] ParseIds(string text)
    {
        var parts = text.Split([' ', ',', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("--prompt-ids: no token ids given");
        return parts.Select(s => int.TryParse(s, out int v) && v >= 0 ? v : throw new ArgumentException($"--prompt-ids: '{s}' is not a non-negative integer")).ToArray();
    }
}
