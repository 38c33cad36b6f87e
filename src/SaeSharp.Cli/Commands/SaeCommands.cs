using System.CommandLine;
using System.Globalization;
using System.Numerics.Tensors;
using SaeSharp.Saes;

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
                ? SaeFiles.ImportSparsify(dir) : SaeFiles.Load(dir);
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
        var norms = SaeSharp.Tensors.Ops.RowNorms(sae.WDec);
        o.WriteLine($"decoder row norms: min {F(norms.Min())}  mean {F(norms.Average())}  max {F(norms.Max())}");
        // Cosine between latent j's encoder column W_enc[:, j] and its decoder row W_dec[j] (undefined when d_out ≠ d_in).
        if (sae.DOut != c.DIn) o.WriteLine($"encoder/decoder cosine per latent: n/a (d_out {sae.DOut} ≠ d_in {c.DIn})");
        else PrintCosine(o, sae, F);
        if (log10Density is not null)
        {
            int dead = log10Density.Count(d => d <= -9.9f);
            int dense = log10Density.Count(d => d > -1f);
            o.WriteLine($"feature density (sparsity.safetensors): never fired {dead}, firing on >10% of tokens {dense}, median log10 density {F(log10Density.Order().ElementAt(log10Density.Length / 2))}");
        }
    }

    private static void PrintCosine(TextWriter o, Sae sae, Func<double, string> F)
    {
        var c = sae.Config;
        var wEnc = sae.WEnc;
        var col = new float[c.DIn];
        double sum = 0, min = double.MaxValue, max = double.MinValue;
        for (int j = 0; j < c.DSae; j++)
        {
            for (int i = 0; i < c.DIn; i++) col[i] = wEnc[i, j];
            double cos = TensorPrimitives.CosineSimilarity(col, sae.WDec.Row(j));
            if (double.IsNaN(cos)) cos = 0;
            sum += cos; min = Math.Min(min, cos); max = Math.Max(max, cos);
        }
        o.WriteLine($"encoder/decoder cosine per latent: min {F(min)}  mean {F(sum / c.DSae)}  max {F(max)}");
    }
}
