using System.CommandLine;
using SaeSharp.IO;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp synth ...`: synthetic ground-truth models (build a preset, score a decoder against it).</summary>
public static class SynthCommands
{
    public static Command Build()
    {
        var synth = new Command("synth", "Synthetic ground-truth data: feature dictionaries, activation generators, MCC");

        var build = new Command("build", "Build a synthetic model (a preset, or --config model.yaml) and save it (config.json, synthetic_model.safetensors, hierarchy.json)");
        var preset = new Option<string>("--preset") { Description = $"Preset: {string.Join(", ", SyntheticModel.PresetNames)}", DefaultValueFactory = _ => "toy" };
        var config = new Option<string?>("--config")
        {
            Description = "A synthetic model config (YAML or JSON, the keys of config.json): num_features, hidden_dim, seed, firing_probabilities, "
                + "mean_magnitudes, std_magnitudes (profiles, or explicit values), hierarchy (explicit trees or a random forest), correlation, orthogonalize",
        };
        var seed = new Option<ulong>("--seed") { Description = "Seed of every random choice (overrides the config's)", DefaultValueFactory = _ => 42UL };
        var output = new Option<string>("--out") { Description = "Output folder", Required = true };
        var steps = new Option<int?>("--ortho-steps") { Description = "Override the preset's orthogonalisation steps" };
        build.Add(preset); build.Add(config); build.Add(seed); build.Add(output); build.Add(steps);
        build.SetAction(p =>
        {
            SyntheticModelConfig cfg;
            if (p.GetValue(config) is { } file)
            {
                if (p.GetResult(preset) is { Tokens.Count: > 0 }) throw new ArgumentException("give --preset or --config, not both");
                cfg = ReadConfig(file);
                if (p.GetResult(seed) is { Tokens.Count: > 0 }) cfg = cfg with { Seed = p.GetValue(seed) };
            }
            else cfg = SyntheticModel.Preset(p.GetValue(preset)!, p.GetValue(seed));
            if (p.GetValue(steps) is int s)
            {
                if (s < 0) throw new ArgumentException($"--ortho-steps must be non-negative, got {s}");
                cfg = cfg with { Orthogonalize = (cfg.Orthogonalize ?? new OrthogonalizeSpec(0, 0.01)) with { Steps = s } };
            }
            var model = p.GetValue(config) is { } path ? BuildFrom(path, cfg) : SyntheticModel.Build(cfg, compute: Compute.All);
            string dir = p.GetValue(output)!;
            model.Save(dir);
            var (f, _) = model.Sample(1024, new Rng(cfg.Seed + 1), compute: Compute.All);
            var o = p.InvocationConfiguration.Output;
            o.WriteLine($"saved {cfg.NumFeatures} features in {cfg.HiddenDim} dimensions to {dir}");
            o.WriteLine($"hierarchy trees: {model.Hierarchy.Count}; correlation: {cfg.Correlation?.Kind ?? "none"}; mean L0 over 1024 samples: {SyntheticEvals.MeanL0(f):F2}");
            return 0;
        });
        synth.Add(build);

        var mcc = new Command("mcc", "Mean correlation coefficient between a decoder and a synthetic model's true features");
        var model = new Option<string>("--synthetic-model") { Description = "Folder written by `synth build`", Required = true };
        var weights = new Option<string>("--weights") { Description = "safetensors file holding the decoder", Required = true };
        var name = new Option<string>("--tensor") { Description = "Decoder tensor name, [d_sae, hidden]", DefaultValueFactory = _ => "W_dec" };
        mcc.Add(model); mcc.Add(weights); mcc.Add(name);
        mcc.SetAction(p =>
        {
            var m = SyntheticModel.Load(p.GetValue(model)!);
            using var st = SafetensorsFile.Open(p.GetValue(weights)!);
            var dec = st.ReadFloat32(p.GetValue(name)!);
            if (dec.Rank != 2 || dec.Dim(1) != m.Dictionary.HiddenDim)
                throw new InvalidDataException($"{st.Path}: tensor '{p.GetValue(name)}' has shape [{dec.ShapeString}], expected [d_sae, {m.Dictionary.HiddenDim}]");
            var o = p.InvocationConfiguration.Output;
            o.WriteLine($"mcc: {SyntheticEvals.Mcc(dec, m.Dictionary.FeatureVectors, compute: Compute.All):F6}");
            o.WriteLine($"feature uniqueness: {SyntheticEvals.FeatureUniqueness(dec, m.Dictionary.FeatureVectors, compute: Compute.All):F6}");
            return 0;
        });
        synth.Add(mcc);
        synth.Add(DemoCommands.BuildSynthTrain());
        return synth;
    }

    /// <summary>A synthetic model config from YAML or JSON; errors name the file line.</summary>
    internal static SyntheticModelConfig ReadConfig(string path) =>
        ConfigSources.ReadStructured(path, (json, where) => SyntheticModelConfig.FromJson(json, where));

    /// <summary>Builds <paramref name="cfg"/> (read from <paramref name="path"/>); a value the builder refuses is reported with its line.</summary>
    internal static SyntheticModel BuildFrom(string path, SyntheticModelConfig cfg) =>
        ConfigSources.ReadStructured(path, (_, _) => SyntheticModel.Build(cfg, compute: Compute.All));

    /// <summary>`--synthetic-model` of synth train and synth mcc: a folder written by `synth build`, or a config file to build.</summary>
    internal static SyntheticModel Open(string pathOrFolder) =>
        Directory.Exists(pathOrFolder) ? SyntheticModel.Load(pathOrFolder) : BuildFrom(pathOrFolder, ReadConfig(pathOrFolder));
}
