using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Models;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp pretokenize`, `saesharp cache` and `saesharp extract`: token files, activation caches and per-document activations.</summary>
public static class DataCommands
{
    public static Command[] Build() => new[] { BuildPretokenize(), BuildCache(), BuildExtract() };

    private static Command BuildPretokenize()
    {
        var cmd = new Command("pretokenize", "Encode a text dataset with a model's tokenizer into a token file (tokens + doc_offsets safetensors) for --tokens-file");
        var tokenizer = new Option<string>("--tokenizer") { Description = "Model folder holding tokenizer.json (or tok512.bin / encoder.json + vocab.bpe), or a llama2.c .bin beside its tokenizer", Required = true };
        var dataset = new Option<string>("--dataset") { Description = "Text dataset (.txt one document per line, .jsonl 'text' field, or a folder)", Required = true };
        var output = new Option<string>("--out") { Description = "Token file to write (.safetensors)", Required = true };
        var addBos = new Option<bool>("--add-bos") { Description = "Begin each document with the tokenizer's BOS (batching adds one per context anyway)" };
        foreach (var o in new Option[] { tokenizer, dataset, output, addBos }) cmd.Add(o);
        cmd.SetAction(p =>
        {
            var docs = ModelInputs.Documents(null, p.GetValue(dataset), p.GetValue(tokenizer)!, p.GetValue(addBos)).ToList();
            TokenFile.Write(p.GetValue(output)!, docs);
            p.InvocationConfiguration.Output.WriteLine($"wrote {docs.Count:N0} documents, {docs.Sum(d => (long)d.Length):N0} tokens to {p.GetValue(output)}");
        });
        return cmd;
    }

    private static Command BuildCache()
    {
        var cmd = new Command("cache", "Write model activations at a hook to a sharded safetensors cache (resumable)");
        var model = new Option<string>("--model") { Description = "Model folder (Hugging Face) or llama2.c .bin", Required = true };
        var hook = new Option<string>("--hook") { Description = "Hook name, e.g. blocks.0.hook_resid_post; several, comma-separated, are concatenated per position", Required = true };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset (.txt one document per line, .jsonl 'text' field, or a folder), encoded with the model's tokenizer" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized safetensors token file" };
        var tokens = new Option<long>("--tokens") { Description = "Number of tokens to cache", Required = true };
        var ctx = new Option<int>("--context-size") { Description = "Context window length", Required = true };
        var outDir = new Option<string>("--out") { Description = "Output folder", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "f32 or bf16", DefaultValueFactory = _ => "f32" };
        var perShard = new Option<int>("--contexts-per-shard") { DefaultValueFactory = _ => 256 };
        var prompts = new Option<int>("--batch-prompts") { DefaultValueFactory = _ => 8 };
        // The same batching as `train --model` (and its defaults), so a cache holds what streaming would train on.
        var separator = new Option<string>("--sequence-separator-token") { Description = "Between concatenated documents: bos, eos, none or a token id", DefaultValueFactory = _ => "bos" };
        foreach (var o in new Option[] { model, hook, dataset, tokensFile, tokens, ctx, outDir, dtype, perShard, prompts, separator }) cmd.Add(o);
        cmd.SetAction(p =>
        {
            var dt = p.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "f32" => DType.F32, "bf16" => DType.BF16,
                var s => throw new ArgumentException($"--dtype: expected f32 or bf16, got '{s}'"),
            };
            int c = p.GetValue(ctx);
            long n = p.GetValue(tokens);
            if (c < 2 || n < c) throw new ArgumentException($"--context-size must be >= 2 and --tokens >= context size (got {c}, {n})");
            var m = HookedTransformer.Load(p.GetValue(model)!);
            var docs = ModelInputs.Documents(p.GetValue(tokensFile), p.GetValue(dataset), p.GetValue(model)!, addBos: false); // the batcher adds BOS per context
            var windows = ModelInputs.Contexts(docs, m.Config, c, prependBos: m.Config.BosTokenId is not null, p.GetValue(separator)!)
                .Take((int)Math.Min(int.MaxValue, n / c)).ToList();
            if (windows.Count == 0) throw new InvalidDataException($"token file holds fewer than {c} tokens");
            var (cts, reg) = Progress.InterruptToken();
            CacheManifest man;
            using (reg) man = ActivationCache.Write(p.GetValue(outDir)!, m, p.GetValue(hook)!, windows, p.GetValue(perShard), p.GetValue(prompts), dt, cancel: cts.Token);
            p.InvocationConfiguration.Output.WriteLine($"cached {man.Shards.Sum(s => (long)s.Rows)} rows of d_in {man.DIn} in {man.Shards.Count} shards");
        });
        return cmd;
    }

    private static Command BuildExtract()
    {
        var cmd = new Command("extract", "One activation per document at its last non-pad token (activations.npy + metadata.json)");
        var model = new Option<string>("--model") { Required = true };
        var hooks = new Option<string>("--hooks") { Description = "Comma-separated hook names (concatenated)", Required = true };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset (.txt one document per line, .jsonl, or a folder), encoded with the model's tokenizer" };
        var tokensFile = new Option<string?>("--tokens-file");
        var pad = new Option<int?>("--pad-token");
        var outDir = new Option<string>("--out") { Required = true };
        foreach (var o in new Option[] { model, hooks, dataset, tokensFile, pad, outDir }) cmd.Add(o);
        cmd.SetAction(p =>
        {
            var m = HookedTransformer.Load(p.GetValue(model)!);
            var docs = ModelInputs.DocumentsWithText(p.GetValue(tokensFile), p.GetValue(dataset), p.GetValue(model)!, addBos: true).ToList();
            var hs = p.GetValue(hooks)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var (cts, reg) = Progress.InterruptToken();
            Tensors.Tensor acts;
            DocumentMetadata meta;
            using (reg)
                (acts, meta) = DocumentExtraction.Extract(m, hs, docs.Select(d => d.Ids).ToList(), docs.Select(d => d.Text).ToList(), padToken: p.GetValue(pad),
                    warn: w => p.InvocationConfiguration.Error.WriteLine($"warning: {w}"), cancel: cts.Token);
            DocumentExtraction.Save(p.GetValue(outDir)!, acts, meta);
            p.InvocationConfiguration.Output.WriteLine($"extracted {acts.Rows} x {acts.Cols} activations");
        });
        return cmd;
    }
}
