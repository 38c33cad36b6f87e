using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp eval`: splice SAEs into a model over a dataset and measure what they preserve (SAELens metrics).</summary>
public static class EvalCommands
{
    public static Command Build()
    {
        var cmd = new Command("eval", "Evaluate SAEs spliced into their model: CE/KL scores, explained variance, MSE, shrinkage, L0, per-feature statistics; writes eval.json, eval.csv, feature_stats.safetensors");
        var model = new Option<string>("--model") { Description = "Model folder (Hugging Face) or llama2.c .bin", Required = true };
        var saes = new Option<string[]>("--sae") { Description = "SAE folder (cfg.json + sae_weights.safetensors); repeat for several SAEs of the model, evaluated in one pass", Required = true };
        var dataset = new Option<string?>("--dataset") { Description = "Text dataset (.txt one document per line, .jsonl 'text' field, or a folder), encoded with the model's tokenizer" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "Pretokenized safetensors token file, instead of --dataset" };
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/eval" };
        var includeSpecial = new Option<bool>("--include-special-tokens") { Description = "Splice and count BOS/EOS positions too (default: excluded, as SAELens)" };
        var settingOptions = new SettingOptions<EvalSettings>("eval",
        [
            ("tokens", new Option<long>("--tokens") { Description = "Tokens to evaluate, in whole contexts (default 262144; 0 = the whole dataset)" }),
            .. ContextOptions.Flags(),
            ("ablation", new Option<string>("--ablation") { Description = "What the ablated run puts at the hook: zero (default) or mean" }),
            ("hook_name", new Option<string>("--hook") { Description = "Hook of SAEs whose cfg.json names none" }),
        ])
        { Validate = s => s.Validate() };
        foreach (var o in new Option[] { model, saes, dataset, tokensFile, output, includeSpecial }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var settings = settingOptions.Bind(p, new EvalSettings());
            if (p.GetValue(includeSpecial)) settings = settings with { ExcludeSpecialTokens = false };
            var o = p.InvocationConfiguration.Output;
            EvalRun.Execute(settings, p.GetValue(model)!, p.GetValue(saes)!, p.GetValue(dataset), p.GetValue(tokensFile), p.GetValue(output)!,
                Progress.For(o), Compute.All);
            return 0;
        });
        return cmd;
    }
}
