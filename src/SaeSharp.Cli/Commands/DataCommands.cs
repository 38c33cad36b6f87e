using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;

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
        var addBos = new Option<bool>("--prepend-bos") { Description = "Begin each document with the tokenizer's BOS (batching adds one per context anyway)" };
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
        var cmd = new Command("cache", "Write model activations at a hook (and a transcoder's target hook) to a sharded safetensors cache (resumable: a rerun with the same settings skips finished shards)");
        var model = new ModelOption("Model folder (Hugging Face) or llama2.c .bin");
        var hook = new Option<string>("--hook") { Description = "Hook name, e.g. blocks.0.hook_resid_post; several, comma-separated, are concatenated per position", Required = true };
        var targetHook = new Option<string?>("--target-hook") { Description = "Also cache this hook's activations at the same positions (acts_out), e.g. blocks.1.hook_mlp_out: a transcoder's training pairs" };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset (.txt one document per line, .jsonl 'text' field, or a folder), encoded with the model's tokenizer" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized safetensors token file" };
        var outDir = new Option<string>("--out") { Description = "Output folder", Required = true };
        // The same setting names as `train --model` (and its defaults), so a cache holds what streaming would train on.
        var settingOptions = new SettingOptions<CacheSettings>("cache",
        [
            ("tokens", new Option<long>("--tokens") { Description = "Number of tokens to cache (whole context windows)" }),
            .. ContextOptions.Flags(),
            ("dtype", new Option<string>("--dtype") { Description = "Storage type: f32 or bf16 (default f32)" }),
            ("contexts_per_shard", new Option<int>("--contexts-per-shard") { Description = "Context windows per shard file (default 256)" }),
        ])
        { Validate = s => s.Validate() };
        foreach (var o in new Option[] { hook, targetHook, dataset, tokensFile, outDir }) cmd.Add(o);
        model.AddTo(cmd);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var settings = settingOptions.Bind(p, new CacheSettings());
            var o = p.InvocationConfiguration.Output;
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                var r = CacheRun.Execute(settings, model.Resolve(p)!.Path, p.GetValue(hook)!, p.GetValue(dataset), p.GetValue(tokensFile), p.GetValue(outDir)!, Compute.All, cts.Token,
                    p.GetValue(targetHook));
                var man = r.Manifest;
                o.WriteLine($"cached {man.Shards.Sum(s => (long)s.Rows):N0} rows of d_in {man.DIn}{(man.HookOut is null ? "" : $" paired with {man.HookOut} (d_out {man.DOut})")} in {man.Shards.Count} of {man.TotalShards} shards");
                if (r.Interrupted)
                {
                    o.WriteLine($"interrupted: the {man.Shards.Count} finished shards are kept; rerun the same command to write the rest");
                    return 130;
                }
            }
            return 0;
        });
        return cmd;
    }

    private static Command BuildExtract()
    {
        var cmd = new Command("extract", "One activation per document at its last non-pad token (activations.npy + metadata.json)");
        var model = new ModelOption("Model folder (Hugging Face) or llama2.c .bin");
        var hooks = new Option<string>("--hook") { Description = "Hook name; several, comma-separated, are concatenated", Required = true };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset (.txt one document per line, .jsonl, or a folder), encoded with the model's tokenizer" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized safetensors token file, instead of --dataset" };
        var pad = new Option<int?>("--pad-token") { Description = "Token id that pads documents (the activation is taken at the last other token)" };
        var outDir = new Option<string>("--out") { Description = "Output folder (activations.npy + metadata.json)", Required = true };
        foreach (var o in new Option[] { hooks, dataset, tokensFile, pad, outDir }) cmd.Add(o);
        model.AddTo(cmd);
        cmd.SetAction(p =>
        {
            string modelPath = model.Resolve(p)!.Path;
            var m = HookedTransformer.Load(modelPath, Compute.All);
            var docs = ModelInputs.DocumentsWithText(p.GetValue(tokensFile), p.GetValue(dataset), modelPath, addBos: true).ToList();
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
