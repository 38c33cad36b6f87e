using System.Globalization;
using SaeSharp.Analysis;
using SaeSharp.Tensors;

namespace SaeSharp.Runs;

/// <summary>Settings of `saesharp features` (snake_case names, bound from YAML, SAESHARP_FEATURES__* variables, --set and flags).</summary>
public sealed record PromptFeaturesSettings
{
    /// <summary>How many latents to list (drrik's find_steering_features top_k).</summary>
    public int TopK { get; set; } = 20;
    /// <summary>Latents whose mean activation is below this are left out (drrik's min_activation).</summary>
    public double MinActivation { get; set; }
    /// <summary>Count BOS/EOS/pad positions in the mean too.</summary>
    public bool IncludeSpecialTokens { get; set; }
    /// <summary>Read the SAE's input at this hook instead of its cfg metadata hook_name.</summary>
    public string? HookName { get; set; }
    /// <summary>How many of each latent's top output tokens (its decoder row's logit lens) to show.</summary>
    public int TopOutputTokens { get; set; } = 3;

    public void Validate()
    {
        if (TopK < 1) throw new ArgumentException($"top_k must be at least 1, got {TopK}");
        if (double.IsNaN(MinActivation)) throw new ArgumentException("min_activation is NaN");
        if (TopOutputTokens < 0) throw new ArgumentException($"top_output_tokens must be >= 0, got {TopOutputTokens}");
    }
}

/// <summary>A latent of <see cref="PromptFeaturesRun"/>: drrik's fields and the tokens its decoder row promotes most.</summary>
public sealed record PromptFeature(SteeringFeatureActivation Activation, IReadOnlyList<(int Token, double DirectionLogit)> TopTokens);

/// <summary>
/// The latents a prompt activates (<see cref="PromptFeaturesRun.Search"/>): the prompt's tokens, which of them are
/// special (BOS/EOS/pad, left out of the mean unless asked), the latents found and, per latent in the same order, its
/// activation at every token (for highlighting).
/// </summary>
public sealed record PromptSearch(int[] Tokens, bool[] Special, int CountedPositions, IReadOnlyList<PromptFeature> Features, float[][] TokenActivations);

/// <summary>
/// `saesharp features`: the latents of an SAE that fire most on a prompt (mean over its tokens, drrik's
/// find_steering_features), printed as a table with each latent's decoder norm and top output tokens: the candidates
/// to steer with.
/// </summary>
public static class PromptFeaturesRun
{
    public static IReadOnlyList<PromptFeature> Execute(PromptFeaturesSettings s, string modelPath, string saeDir, string prompt, string? tokenizerPath,
        IRunReporter reporter, Compute compute)
    {
        s.Validate();
        var steering = SteerRun.Open(modelPath, saeDir, tokenizerPath, s.HookName, compute);
        var search = Search(steering, prompt, s);
        var (tokens, result, counted) = (search.Tokens, search.Features, search.CountedPositions);
        var site = steering.Sae.Site;
        reporter.WriteLine($"SAE {steering.Sae.Name} ({steering.Sae.Sae.Config.Architecture}, d_sae {steering.Sae.Sae.Config.DSae}) at {site.InputHook}; " +
                           $"prompt {tokens.Length} tokens, mean over {counted}{(counted < tokens.Length ? " (special tokens left out)" : "")}");
        string F(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
        var header = new[] { "feature", "activation", "normalized_activation", "decoder_weight_norm", "top tokens" };
        var rows = result.Select(p => new[]
        {
            p.Activation.FeatureIdx.ToString(CultureInfo.InvariantCulture), F(p.Activation.Activation), F(p.Activation.NormalizedActivation),
            F(p.Activation.DecoderWeightNorm), string.Join(" ", p.TopTokens.Select(t => SteerRun.Quote(steering, t.Token))),
        }).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => i < 4 ? c.PadLeft(widths[i]) : c));
        reporter.WriteLine(Line(header));
        foreach (var r in rows) reporter.WriteLine(Line(r));
        if (rows.Count == 0) reporter.WriteLine($"no latent has a mean activation of at least {s.MinActivation.ToString(CultureInfo.InvariantCulture)}");
        return result;
    }

    /// <summary>
    /// drrik's find_steering_features on <paramref name="prompt"/> with <paramref name="steering"/>'s model and SAE, one
    /// forward: the latents of highest mean activation with their top output tokens, and each one's activation at every
    /// prompt token (special tokens included, so a page can show the whole prompt).
    /// </summary>
    public static PromptSearch Search(SaeSteering steering, string prompt, PromptFeaturesSettings s)
    {
        s.Validate();
        var tokens = steering.EncodePrompt(prompt);
        var all = steering.PromptActivations(tokens, includeSpecialTokens: true);
        var counted = s.IncludeSpecialTokens ? all : steering.CountedRows(tokens, all);
        var found = steering.FindSteeringFeatures(prompt, counted, s.TopK, s.MinActivation);
        var features = found.Select(f => new PromptFeature(f, steering.FeatureTokens(f.FeatureIdx, s.TopOutputTokens))).ToArray();
        var codes = steering.Sae.Sae.Encode(all);
        var perToken = features.Select(f => Enumerable.Range(0, tokens.Length).Select(p => codes[p, f.Activation.FeatureIdx]).ToArray()).ToArray();
        var special = tokens.Select(steering.IsSpecialToken).ToArray();
        return new PromptSearch(tokens, special, counted.Rows, features, perToken);
    }
}
