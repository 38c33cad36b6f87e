using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp match`: match SAE features across checkpoints of a model's training (or seeds, widths) to a reference SAE.</summary>
public static class MatchCommands
{
    public static Command Build()
    {
        var cmd = new Command("match", "Match the latents of SAEs (e.g. one per training checkpoint) to a reference SAE's by activation cosine over the same tokens with an optimal one-to-one assignment; writes match.json, checkpoints.csv, matches.csv, distances.safetensors, figures and match_report.html");
        var reference = new Option<string>("--reference") { Description = "Run folder of the reference SAE (e.g. the final checkpoint's)", Required = true };
        var runs = new Option<string[]>("--run") { Description = "Run folder of an SAE to match, in training order; repeat for several", Required = true };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset of the matching tokens (.txt one document per line, .jsonl 'text' field, or a folder), encoded with the reference model's tokenizer" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized safetensors token file, instead of --dataset" };
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/match" };
        var settingOptions = new SettingOptions<MatchSettings>("match",
        [
            ("tokens", new Option<long>("--tokens") { Description = "Tokens to run, in whole contexts (default 100000; 0 = the whole dataset)" }),
            ("sparsity_threshold", new Option<double>("--sparsity-threshold") { Description = "Activations at or below this magnitude are dropped (default 1e-6)" }),
            ("by", new Option<string>("--by") { Description = "activations (default: activation cosine over the tokens) or decoder (decoder-row cosine, no data; reports mean max cosine)" }),
            ("distance_threshold", new Option<double>("--distance-threshold") { Description = "A pair is matched when 1 − cosine is below this (default 0.5)" }),
            ("appearing_at", new Option<string>("--appearing-at") { Description = "Checkpoint (run folder name or step) whose appearing features the report follows (default: every checkpoint's)" }),
            .. ContextOptions.Flags(),
        ]);
        foreach (var o in new Option[] { reference, runs, dataset, tokensFile, output }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var settings = settingOptions.Bind(p, new MatchSettings());
            var o = p.InvocationConfiguration.Output;
            MatchRun.Execute(settings, p.GetValue(reference)!, p.GetValue(runs)!, p.GetValue(dataset), p.GetValue(tokensFile), p.GetValue(output)!,
                Progress.For(o), Compute.All);
            return 0;
        });
        cmd.Add(BuildReorder());
        return cmd;
    }

    private static Command BuildReorder()
    {
        var cmd = new Command("reorder", "Save a matched run's SAE with its latents permuted into the reference's order (every per-latent tensor and sparsity.safetensors), loadable by SaeSharp and SAELens");
        var match = new Option<string>("--match") { Description = "Output folder of `saesharp match`", Required = true };
        var run = new Option<string>("--run") { Description = "The run to reorder: its folder or its checkpoint name in the match", Required = true };
        var output = new Option<string?>("--out") { Description = "Folder for the reordered SAE (default: MATCH/reordered/<name>)" };
        foreach (var o in new Option[] { match, run, output }) cmd.Add(o);
        cmd.SetAction(p =>
        {
            MatchRun.Reorder(p.GetValue(match)!, p.GetValue(run)!, p.GetValue(output), Progress.For(p.InvocationConfiguration.Output));
            return 0;
        });
        return cmd;
    }
}
