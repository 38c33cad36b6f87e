using System.Globalization;
using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Tensors;
using SaeSharp.Text;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Analysis;

/// <summary>
/// A latent that fires on a prompt (drrik's find_steering_features): its mean activation over the prompt's tokens,
/// that mean divided by the latent's decoder norm (+1e-8), and the decoder norm.
/// </summary>
public sealed record SteeringFeatureActivation(int FeatureIdx, double Activation, double NormalizedActivation, double DecoderWeightNorm);

/// <summary>
/// One generation: its label ("baseline", "strength_2.0" as drrik names them, or "steered"), the intervention (null
/// for the unsteered model), the prompt and new tokens, the decoded text (prompt and continuation, special tokens
/// left out, as drrik returns it) and the effect measures when taken.
/// </summary>
public sealed record SteeredGeneration
{
    public required string Label { get; init; }
    public SteeringIntervention? Intervention { get; init; }
    public required int[] Prompt { get; init; }
    public required int[] Generated { get; init; }
    public required string Text { get; init; }
    public SteeringEffects? Effects { get; init; }
    /// <summary>The strength the run used (0 for the unsteered model).</summary>
    public double Strength => Intervention?.Strength ?? 0;
    public int[] Tokens => [.. Prompt, .. Generated];
}

/// <summary>
/// compare_steering's runs, all from one prompt at one seed, with the tokens the features' summed direction promotes
/// most (what <see cref="SteeringEffects.TopTokens"/> reports for every run).
/// </summary>
public sealed record SteeringComparison(int[] Prompt, IReadOnlyList<SteeredGeneration> Runs, IReadOnlyList<(int Token, double DirectionLogit)> DirectionTokens)
{
    /// <summary>Label → text in run order: what drrik's compare_steering returns.</summary>
    public IReadOnlyDictionary<string, string> Texts
    {
        get
        {
            var d = new OrderedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var r in Runs) d.Add(r.Label, r.Text);
            return d;
        }
    }
}

/// <summary>
/// drrik's SAESteering over SaeSharp's runtime: generation steered by an SAE's features at the SAE's own hook
/// (<see cref="SteeringHooks"/>), strength comparisons at one seed, the latents a prompt activates, feature directions
/// and saved analyses. The drrik operations keep their names and defaults (<see cref="Generate(string, int?, double, int, float, float, IReadOnlyList{int}?, IReadOnlyList{double}?)"/>,
/// <see cref="CompareSteering"/>, <see cref="FindSteeringFeatures(string, int, double, bool)"/>, <see cref="GetSteeringDirection"/>,
/// <see cref="SaveSteeringAnalysis(IReadOnlyDictionary{string, string}, string, string, string)"/>); the settings
/// drrik does not have (mode, positions, normalisation, seed) are properties of this object.
/// </summary>
public sealed class SaeSteering
{
    /// <summary>compare_steering's default strengths.</summary>
    public static readonly IReadOnlyList<double> DefaultStrengths = [0.0, 1.0, 2.0, 3.0, 5.0];

    public SaeSteering(HookedTransformer model, HookedSae sae, ITokenizer tokenizer)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Sae = sae ?? throw new ArgumentNullException(nameof(sae));
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens, more than the model's vocabulary of {model.Config.VocabSize}");
    }

    public HookedTransformer Model { get; }
    public HookedSae Sae { get; }
    public ITokenizer Tokenizer { get; }

    public SteeringMode Mode { get; init; } = SteeringMode.Add;
    public SteeringPositions Positions { get; init; } = SteeringPositions.All;
    /// <summary>Add mode: steer along unit-length decoder directions.</summary>
    public bool Normalize { get; init; }
    /// <summary>Every generation draws from a fresh generator with this seed (drrik's random_seed default).</summary>
    public ulong Seed { get; init; } = 42;
    /// <summary>Top-k cut of the sampler (0 = none; drrik samples with temperature and top-p only).</summary>
    public int TopK { get; init; }
    /// <summary>Stop at the model's EOS token, as drrik does.</summary>
    public bool StopAtEos { get; init; } = true;
    /// <summary>Decode with the KV cache; false recomputes the whole sequence for every token (the same tokens, slower).</summary>
    public bool UseKvCache { get; init; } = true;
    /// <summary>Measure KL and logit changes for every steered run (<see cref="SteeringEffects"/>).</summary>
    public bool MeasureEffects { get; init; } = true;
    /// <summary>How many of the direction's top output tokens the effect measures follow.</summary>
    public int TopOutputTokenCount { get; init; } = 5;

    // ---- drrik's operations ----

    /// <summary>
    /// drrik's generate: no features is the baseline; <paramref name="featureIdx"/> with <paramref name="strength"/>
    /// steers one feature; <paramref name="featureIndices"/> with <paramref name="strengths"/> (one each, default 1)
    /// steers several, their directions summed. Returns prompt and continuation as text.
    /// </summary>
    public string Generate(string text, int? featureIdx = null, double strength = 1.0, int maxNewTokens = 50, float temperature = 0.8f, float topP = 0.9f,
        IReadOnlyList<int>? featureIndices = null, IReadOnlyList<double>? strengths = null)
    {
        var features = Features(featureIdx, strength, featureIndices, strengths);
        return Run(EncodePrompt(text), features is null ? null : Intervention(features), Options(maxNewTokens, temperature, topP),
            features is null ? "baseline" : "steered").Text;
    }

    /// <summary>
    /// drrik's compare_steering: one generation per strength of <paramref name="featureIdx"/> (default
    /// <see cref="DefaultStrengths"/>), every one at the same seed, labelled "baseline" for 0 and "strength_{s}" otherwise.
    /// </summary>
    public IReadOnlyDictionary<string, string> CompareSteering(string text, int featureIdx, IReadOnlyList<double>? strengths = null, int maxNewTokens = 50,
        float temperature = 0.8f, float topP = 0.9f) =>
        Compare(EncodePrompt(text), [new SteeringFeature(featureIdx)], strengths ?? DefaultStrengths, Options(maxNewTokens, temperature, topP)).Texts;

    /// <summary>
    /// drrik's find_steering_features over the prompt's own activations at the SAE's input hook (BOS, EOS and pad
    /// positions left out unless <paramref name="includeSpecialTokens"/>).
    /// </summary>
    public IReadOnlyList<SteeringFeatureActivation> FindSteeringFeatures(string text, int topK = 20, double minActivation = 0.0, bool includeSpecialTokens = false) =>
        FindSteeringFeatures(text, PromptActivations(EncodePrompt(text), includeSpecialTokens), topK, minActivation);

    /// <summary>
    /// drrik's find_steering_features: the <paramref name="topK"/> latents of highest mean activation over the rows of
    /// <paramref name="activations"/> [n, d_in], those below <paramref name="minActivation"/> left out, in descending
    /// order (ties to the lower index). <paramref name="text"/> only names the prompt in errors, as drrik logs it.
    /// </summary>
    public IReadOnlyList<SteeringFeatureActivation> FindSteeringFeatures(string text, Tensor activations, int topK = 20, double minActivation = 0.0)
    {
        if (topK < 1) throw new ArgumentException($"top_k must be at least 1, got {topK}");
        if (double.IsNaN(minActivation)) throw new ArgumentException("min_activation is NaN");
        var sae = Sae.Sae;
        if (activations.Rank != 2 || activations.Cols != sae.Config.DIn)
            throw new ArgumentException($"activations for '{Shorten(text)}' must be [n, {sae.Config.DIn}], got [{activations.ShapeString}]");
        if (activations.Rows == 0) throw new ArgumentException($"no activations for '{Shorten(text)}'");
        var features = sae.Encode(activations);
        var mean = new double[sae.Config.DSae];
        for (int r = 0; r < features.Rows; r++)
        {
            var row = features.Row(r);
            for (int j = 0; j < mean.Length; j++) mean[j] += row[j];
        }
        for (int j = 0; j < mean.Length; j++) mean[j] /= features.Rows;
        var norms = Ops.RowNorms(sae.WDec);
        return Enumerable.Range(0, mean.Length).Where(j => mean[j] >= minActivation)
            .OrderByDescending(j => mean[j]).ThenBy(j => j).Take(topK)
            .Select(j => new SteeringFeatureActivation(j, mean[j], mean[j] / (norms[j] + 1e-8), norms[j])).ToArray();
    }

    /// <summary>drrik's get_steering_direction: latent <paramref name="featureIdx"/>'s decoder row, unit length when <paramref name="normalize"/> (a zero row stays zero).</summary>
    public float[] GetSteeringDirection(int featureIdx, bool normalize = true)
    {
        CheckFeature(featureIdx);
        return SteeringHooks.Direction(Sae.Sae, [new SteeringFeature(featureIdx)], normalize);
    }

    /// <summary>
    /// drrik's save_steering_analysis: writes <c>steering_analysis[_{label}]_{yyyyMMdd_HHmmss}.txt</c> in drrik's format
    /// and the same results as a <c>.json</c> beside it; returns the text file's path.
    /// </summary>
    public string SaveSteeringAnalysis(IReadOnlyDictionary<string, string> results, string outputDir, string prompt = "", string featureLabel = "") =>
        SteeringAnalysisFile.Write(outputDir, prompt, featureLabel, results, SteeringAnalysisFile.Describe(this, null, null), DateTime.Now);

    /// <summary>
    /// <see cref="SaveSteeringAnalysis(IReadOnlyDictionary{string, string}, string, string, string)"/> for a whole
    /// comparison: the JSON also holds every run's tokens and effect measures, this object's settings and
    /// <paramref name="rerun"/> (what the caller needs to run it again, e.g. paths and settings).
    /// </summary>
    public string SaveSteeringAnalysis(SteeringComparison comparison, string outputDir, string prompt = "", string featureLabel = "",
        System.Text.Json.Nodes.JsonObject? rerun = null) =>
        SteeringAnalysisFile.Write(outputDir, prompt, featureLabel, comparison.Texts, SteeringAnalysisFile.Describe(this, comparison, rerun), DateTime.Now);

    // ---- the general forms ----

    /// <summary>
    /// One generation per strength: each scales the intervention on <paramref name="features"/> (0 is the unsteered
    /// model through the same hooks), at the same seed. Labels follow drrik; a strength given twice is an error.
    /// </summary>
    /// <param name="completed">Called after each run (for progress); <paramref name="cancel"/> is checked between runs.</param>
    public SteeringComparison Compare(int[] prompt, IReadOnlyList<SteeringFeature> features, IReadOnlyList<double> strengths, GenerationOptions options,
        Action<SteeredGeneration>? completed = null, CancellationToken cancel = default)
    {
        if (strengths.Count == 0) throw new ArgumentException("no strengths to compare");
        var unit = Intervention(features);
        unit.Validate(Sae.Sae);
        var labels = new HashSet<string>(StringComparer.Ordinal);
        foreach (double s in strengths)
        {
            if (!double.IsFinite(s)) throw new ArgumentException($"strength must be finite, got {s.ToString(CultureInfo.InvariantCulture)}");
            if (!labels.Add(StrengthLabel(s))) throw new ArgumentException($"strength {s.ToString(CultureInfo.InvariantCulture)} is given twice");
        }
        var runs = new SteeredGeneration[strengths.Count];
        for (int i = 0; i < runs.Length; i++)
        {
            cancel.ThrowIfCancellationRequested();
            runs[i] = Run(prompt, unit with { Strength = strengths[i] }, options, StrengthLabel(strengths[i]));
            completed?.Invoke(runs[i]);
        }
        return new SteeringComparison(prompt, runs, DirectionTokens(unit));
    }

    /// <summary>One generation (steered when <paramref name="intervention"/> is not null) with its effect measures.</summary>
    public SteeredGeneration Run(int[] prompt, SteeringIntervention? intervention, GenerationOptions options, string label)
    {
        var generated = GenerateTokens(prompt, intervention, options);
        int[] all = [.. prompt, .. generated];
        var effects = intervention is not null && MeasureEffects
            ? SteeringEffects.Measure(Model, Sae, intervention, all, prompt.Length, DirectionTokens(intervention))
            : null;
        return new SteeredGeneration { Label = label, Intervention = intervention, Prompt = prompt, Generated = generated, Text = Decode(all), Effects = effects };
    }

    /// <summary>
    /// The new tokens of one generation from <paramref name="prompt"/> at <see cref="Seed"/>, steered by
    /// <paramref name="intervention"/> when given; with the KV cache (<see cref="UseKvCache"/>) or recomputing the
    /// whole sequence for each token.
    /// </summary>
    public int[] GenerateTokens(int[] prompt, SteeringIntervention? intervention, GenerationOptions options)
    {
        intervention?.Validate(Sae.Sae);
        var rng = new Rng(Seed);
        HookSet? Hooks() => intervention is null ? null : new HookSet().AddSteering(Sae, intervention, prompt.Length);
        if (UseKvCache) return Model.Generate(prompt, options, rng, hooks: Hooks());
        options.Sampling.Validate();
        if (prompt.Length == 0) throw new ArgumentException("prompt is empty (start it with the BOS token)", nameof(prompt));
        var tokens = new List<int>(prompt);
        while (tokens.Count - prompt.Length < options.MaxNewTokens)
        {
            var logits = Model.Forward(tokens.ToArray(), Hooks());
            int next = Sampler.Sample(logits.Row(logits.Rows - 1), options.Sampling, rng);
            tokens.Add(next);
            if (next == options.StopToken) break;
        }
        return tokens.Skip(prompt.Length).ToArray();
    }

    /// <summary>The SAE's input rows [positions, d_in] on <paramref name="prompt"/>, BOS/EOS/pad positions left out unless <paramref name="includeSpecialTokens"/>.</summary>
    public Tensor PromptActivations(int[] prompt, bool includeSpecialTokens = false)
    {
        if (prompt.Length == 0) throw new ArgumentException("prompt is empty");
        var site = Sae.Site;
        var rows = site.GatherInput(Model.RunWithCache(prompt, [site.InputHook], returnLogits: false).Cache[site.InputHook]);
        return includeSpecialTokens ? rows : CountedRows(prompt, rows);
    }

    /// <summary>The rows of <paramref name="rows"/> [prompt positions, d] at the positions that hold no BOS/EOS/pad token (what find_steering_features averages over).</summary>
    public Tensor CountedRows(int[] prompt, Tensor rows)
    {
        if (rows.Rows != prompt.Length) throw new ArgumentException($"rows: expected one per prompt token ({prompt.Length}), got {rows.Rows}");
        var keep = Enumerable.Range(0, prompt.Length).Where(p => !IsSpecialToken(prompt[p])).ToArray();
        if (keep.Length == 0) throw new ArgumentException("the prompt holds only special tokens (BOS/EOS); give it some text");
        var kept = Tensor.Uninitialized(keep.Length, rows.Cols);
        for (int i = 0; i < keep.Length; i++) rows.Row(keep[i]).CopyTo(kept.Row(i));
        return kept;
    }

    /// <summary>Whether <paramref name="token"/> is the tokenizer's or the model's BOS, EOS or pad token.</summary>
    public bool IsSpecialToken(int token) => SpecialTokens().Contains(token);

    /// <summary>The tokens the intervention's direction promotes most: Σ s_i d_i over its features (add and clamp), Σ d_i (ablate, whose logits should fall).</summary>
    public (int Token, double DirectionLogit)[] DirectionTokens(SteeringIntervention intervention)
    {
        var features = intervention.Mode == SteeringMode.Ablate ? intervention.Features.Select(f => f with { Strength = 1 }).ToArray() : intervention.Features;
        return SteeringEffects.TopOutputTokens(Model, SteeringHooks.Direction(Sae.Sae, features, intervention.Normalize), TopOutputTokenCount);
    }

    /// <summary>The tokens latent <paramref name="featureIdx"/>'s decoder row promotes most (its logit lens).</summary>
    public (int Token, double DirectionLogit)[] FeatureTokens(int featureIdx, int count)
    {
        CheckFeature(featureIdx);
        return SteeringEffects.TopOutputTokens(Model, Sae.Sae.WDec.Row(featureIdx), count);
    }

    /// <summary>The prompt's tokens: BOS first where the tokenizer has a BOS of its own (sentencepiece-style; GPT-2's BOS is its EOS and is not prepended).</summary>
    public int[] EncodePrompt(string text)
    {
        var tokens = Tokenizer.EncodeDocument(text);
        if (tokens.Length == 0) throw new ArgumentException("the prompt encodes to no tokens and the tokenizer has no BOS to start from");
        return tokens;
    }

    /// <summary>Text of <paramref name="tokens"/> with BOS, EOS and pad tokens left out (drrik's skip_special_tokens).</summary>
    public string Decode(ReadOnlySpan<int> tokens)
    {
        var special = SpecialTokens();
        var kept = new List<int>(tokens.Length);
        foreach (int t in tokens) if (!special.Contains(t)) kept.Add(t);
        return Tokenizer.Decode(kept.ToArray());
    }

    /// <summary>The text of one token as the tokenizer's vocabulary stores it (for tables of tokens).</summary>
    public string TokenText(int token) => token < Tokenizer.VocabSize ? Tokenizer.TokenText(token) : $"<{token}>";

    /// <summary>drrik's label of a strength: "baseline" for 0, else "strength_" and the number as Python prints a float (1.0, 2.5, -2.0).</summary>
    public static string StrengthLabel(double strength) => strength == 0 ? "baseline" : "strength_" + PythonFloat(strength);

    /// <summary>A float as Python's repr writes it: the shortest round-trip digits, ".0" on whole numbers, exponents as 1e-05.</summary>
    public static string PythonFloat(double v)
    {
        string r = v.ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOf('E');
        if (e < 0) return r.Contains('.') ? r : r + ".0";
        string mantissa = r[..e];
        int exponent = int.Parse(r[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        return $"{mantissa}e{(exponent < 0 ? "-" : "+")}{Math.Abs(exponent):00}";
    }

    /// <summary>The intervention of this object's mode, positions and normalisation on <paramref name="features"/> at strength 1.</summary>
    public SteeringIntervention Intervention(IReadOnlyList<SteeringFeature> features) =>
        new() { Features = features, Mode = Mode, Positions = Positions, Normalize = Normalize };

    /// <summary>Generation options of drrik's calls: the token budget and sampling, this object's top-k and stop rule.</summary>
    public GenerationOptions Options(int maxNewTokens, float temperature, float topP) => new()
    {
        MaxNewTokens = maxNewTokens,
        Sampling = new SamplingOptions { Temperature = temperature, TopK = TopK, TopP = topP },
        StopToken = StopAtEos ? Model.Config.EosTokenId : null,
    };

    /// <summary>drrik's argument rules: nothing is the baseline (null); one index with one strength; or lists of equal length (strengths default to 1).</summary>
    private IReadOnlyList<SteeringFeature>? Features(int? featureIdx, double strength, IReadOnlyList<int>? featureIndices, IReadOnlyList<double>? strengths)
    {
        if (featureIdx is int one)
        {
            if (featureIndices is not null) throw new ArgumentException("give feature_idx or feature_indices, not both");
            return [new SteeringFeature(one, strength)];
        }
        if (featureIndices is null)
        {
            if (strengths is not null) throw new ArgumentException("strengths given without feature_indices");
            return null;
        }
        strengths ??= featureIndices.Select(_ => 1.0).ToArray();
        if (featureIndices.Count != strengths.Count)
            throw new ArgumentException($"feature_indices and strengths must have the same length (got {featureIndices.Count} and {strengths.Count})");
        return featureIndices.Select((f, i) => new SteeringFeature(f, strengths[i])).ToArray();
    }

    private void CheckFeature(int featureIdx)
    {
        int dSae = Sae.Sae.Config.DSae;
        if (featureIdx < 0 || featureIdx >= dSae) throw new ArgumentOutOfRangeException(nameof(featureIdx), $"feature_idx {featureIdx} out of range [0, {dSae})");
    }

    private HashSet<int>? _special;

    private HashSet<int> SpecialTokens() => _special ??= SpecialTokenSet();

    private HashSet<int> SpecialTokenSet()
    {
        var set = new HashSet<int>();
        foreach (var t in new[] { Tokenizer.BosId, Tokenizer.EosId, Tokenizer.PadId, Model.Config.BosTokenId, Model.Config.EosTokenId })
            if (t is int id) set.Add(id);
        return set;
    }

    private static string Shorten(string text) => text.Length <= 100 ? text : text[..100] + "...";
}
