using System.CommandLine;
using System.Globalization;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp sae ...`: look at saved SAEs (SAELens folders, or sparsify folders when they hold sae.safetensors).</summary>
public static class SaeCommands
{
    public static Command Build()
    {
        var sae = new Command("sae", "Inspect sparse autoencoders saved in SAELens layout");
        var info = new Command("info", "Architecture, sizes and weight statistics (decoder norms, encoder/decoder cosine, feature density)");
        var path = new Argument<string>("path") { Description = "SAE folder (cfg.json + sae_weights.safetensors, or a sparsify folder)" };
        info.Add(path);
        info.SetAction(p =>
        {
            string dir = p.GetValue(path)!;
            var s = File.Exists(Path.Combine(dir, SaeFiles.SparsifyWeightsFile)) && !File.Exists(Path.Combine(dir, SaeFiles.WeightsFile))
                ? SaeFiles.ImportSparsify(dir, Compute.All) : SaeFiles.Load(dir, Compute.All);
            Print(p.InvocationConfiguration.Output, s, SaeFiles.LoadSparsity(dir, s.Config.DSae));
            return 0;
        });
        sae.Add(info);
        return sae;
    }

    public static void Print(TextWriter o, Sae sae, float[]? log10Density)
    {
        var c = sae.Config;
        string F(double v) => v.ToString("G5", CultureInfo.InvariantCulture);
        o.WriteLine($"architecture: {c.Architecture}");
        o.WriteLine($"d_in: {c.DIn}   d_sae: {c.DSae}{(c.IsTranscoder ? $"   d_out: {c.DOut}" : "")}{(c.K > 0 ? $"   k: {c.K}" : "")}   apply_b_dec_to_input: {c.ApplyBDecToInput.ToString().ToLowerInvariant()}   normalize_activations: {c.NormalizeActivations}");
        if (c.MatryoshkaWidths is { } widths) o.WriteLine($"matryoshka_widths: [{string.Join(", ", widths)}]");
        foreach (var (k, v) in c.Metadata) o.WriteLine($"metadata.{k}: {v?.ToJsonString()}");
        o.WriteLine("parameters:");
        foreach (var (name, t) in sae.Params) o.WriteLine($"  {name,-10} [{t.ShapeString}]");
        var norms = WeightStatistics.DecoderNorms(sae);
        o.WriteLine($"decoder row norms: min {F(norms.Min())}  mean {F(norms.Average())}  max {F(norms.Max())}");
        var cos = WeightStatistics.EncoderDecoderCosines(sae);
        o.WriteLine(cos is null ? $"encoder/decoder cosine per latent: n/a (d_out {sae.DOut} ≠ d_in {c.DIn})"
            : $"encoder/decoder cosine per latent: min {F(cos.Min())}  mean {F(cos.Average())}  max {F(cos.Max())}");
        // A training run's two counts of inactive latents answer different questions: dead lately, or never useful.
        if (c.Metadata["dead_latents"] is { } deadLately)
            o.WriteLine($"training run: {deadLately} latents did not fire in the last {c.Metadata["dead_latents_window_steps"]?.ToJsonString() ?? "?"} steps; " +
                        $"{c.Metadata["never_fired_latents"]?.ToJsonString() ?? "?"} never fired over the whole run");
        if (log10Density is not null)
        {
            int silent = log10Density.Count(d => d <= -9.9f);
            int dense = log10Density.Count(d => d > -1f);
            o.WriteLine($"feature density (sparsity.safetensors, the last sampling window): no firing {silent}, firing on >10% of tokens {dense}, median log10 density {F(log10Density.Order().ElementAt(log10Density.Length / 2))}");
        }
    }
}
