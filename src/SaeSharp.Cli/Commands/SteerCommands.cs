using System.CommandLine;
using SaeSharp.Runs;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp steer` (generation steered by SAE features, compared over strengths) and `saesharp features` (a prompt's top latents).</summary>
public static class SteerCommands
{
    public static IEnumerable<Command> Build() => [BuildSteer(), BuildFeatures()];

    private static Option<string> Model() => new("--model") { Description = "Model folder (Hugging Face) or llama2.c .bin" };
    private static Option<string> Sae() => new("--sae") { Description = "SAE folder (cfg.json + sae_weights.safetensors), placed at its cfg metadata hook_name" };
    private static Option<string> Prompt() => new("--prompt") { Description = "Prompt text, encoded with the model's tokenizer (BOS first where the tokenizer has its own)" };
    private static Option<string?> Tokenizer() => new("--tokenizer") { Description = "Tokenizer file or folder (default: the model's folder)" };

    private static Command BuildSteer()
    {
        var cmd = new Command("steer", "Generate with and without SAE features steering the model (drrik's compare_steering: one run per strength at one seed), " +
                                       "with KL and logit effects per generated token; saves drrik's steering_analysis text file and a JSON to rerun it");
        var model = Model();
        var sae = Sae();
        var prompt = Prompt();
        var tokenizer = Tokenizer();
        var feature = new Option<string[]>("--feature")
        {
            Description = "A latent and its strength as index=strength (add: multiple of its decoder direction; clamp: its value; ablate: index only); repeat for several, summed",
        };
        var output = new Option<string>("--out") { Description = "Folder of the saved analysis", DefaultValueFactory = _ => "runs/steer" };
        var noSave = new Option<bool>("--no-save") { Description = "Print only; write no analysis files" };
        var rerun = new Option<string?>("--rerun") { Description = "Run a saved analysis's JSON again (its model, SAE, prompt and settings)" };
        var settingOptions = new SettingOptions<SteerSettings>("steer",
        [
            ("strengths", new Option<string>("--strengths") { Description = "Comma-separated strengths, each scaling the whole intervention (default 0,1,2,3,5; 0 is the baseline)" }),
            ("mode", new Option<string>("--mode") { Description = "add (strength × decoder direction), clamp (set latents to values, error term kept) or ablate (clamp to 0); default add" }),
            ("positions", new Option<string>("--positions") { Description = "Positions steered: all (default), prompt or generated" }),
            ("normalize", new Option<bool>("--normalize") { Description = "Add mode: unit-length decoder directions" }),
            ("temperature", new Option<float>("--temperature") { Description = "Sampling temperature (default 0.8; 0 is greedy)" }),
            ("top_p", new Option<float>("--top-p") { Description = "Nucleus sampling: smallest set with this much probability (default 0.9)" }),
            ("top_k", new Option<int>("--top-k") { Description = "Keep only the k most likely tokens (default 0 = all)" }),
            ("seed", new Option<ulong>("--seed") { Description = "Seed of every run's sampler (default 42)" }),
            ("max_tokens", new Option<int>("--max-tokens") { Description = "New tokens per run at most (default 50)" }),
            ("hook_name", new Option<string>("--hook") { Description = "Steer at this hook instead of the SAE's cfg hook_name" }),
        ]);
        foreach (var o in new Option[] { model, sae, prompt, tokenizer, feature, output, noSave, rerun }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var reporter = Progress.For(p.InvocationConfiguration.Output);
            string? outDir = p.GetValue(noSave) ? null : p.GetValue(output);
            if (p.GetValue(rerun) is { } saved)
            {
                if (p.GetValue(model) is not null || p.GetValue(sae) is not null || p.GetValue(prompt) is not null)
                    throw new ArgumentException("--rerun takes model, SAE and prompt from the saved analysis; leave out --model, --sae and --prompt");
                SteerRun.Rerun(saved, outDir, reporter, Compute.All);
                return 0;
            }
            var settings = settingOptions.Bind(p, new SteerSettings());
            if (p.GetValue(feature) is { Length: > 0 } features) settings = settings with { Features = string.Join(",", features) };
            SteerRun.Execute(settings, Required(p, model), Required(p, sae), Required(p, prompt), p.GetValue(tokenizer), outDir, reporter, Compute.All);
            return 0;
        });
        return cmd;
    }

    private static Command BuildFeatures()
    {
        var cmd = new Command("features", "The SAE latents that fire most on a prompt (drrik's find_steering_features: mean activation over its tokens), " +
                                          "with decoder norms and top output tokens: what to steer with");
        var model = Model();
        var sae = Sae();
        var prompt = Prompt();
        var tokenizer = Tokenizer();
        model.Required = sae.Required = prompt.Required = true;
        var settingOptions = new SettingOptions<PromptFeaturesSettings>("features",
        [
            ("top_k", new Option<int>("--top-k") { Description = "Latents to list (default 20)" }),
            ("min_activation", new Option<double>("--min-activation") { Description = "Leave out latents whose mean activation is below this (default 0)" }),
            ("include_special_tokens", new Option<bool>("--include-special-tokens") { Description = "Count BOS/EOS positions in the mean too (default: left out)" }),
            ("hook_name", new Option<string>("--hook") { Description = "Read the SAE's input at this hook instead of its cfg hook_name" }),
        ])
        { Validate = s => s.Validate() };
        foreach (var o in new Option[] { model, sae, prompt, tokenizer }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var settings = settingOptions.Bind(p, new PromptFeaturesSettings());
            PromptFeaturesRun.Execute(settings, p.GetValue(model)!, p.GetValue(sae)!, p.GetValue(prompt)!, p.GetValue(tokenizer),
                Progress.For(p.InvocationConfiguration.Output), Compute.All);
            return 0;
        });
        return cmd;
    }

    private static string Required(ParseResult p, Option<string> option) =>
        p.GetValue(option) ?? throw new ArgumentException($"{option.Name} is required (or --rerun a saved analysis)");
}
