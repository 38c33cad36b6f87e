using System.Text.Json;
using System.Text.Json.Serialization;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Synthetic;

/// <summary>
/// A per-feature profile. Kinds: <c>constant</c> (value), <c>linear</c> (start → end), <c>exponential</c> (start → end,
/// both &gt; 0), <c>zipfian</c> (exponent, min, max), <c>random</c> (uniform in [min, max]), <c>folded_normal</c> (|mean + std·N|),
/// <c>explicit</c> (values: one per feature, as SAELens's tensors of firing probabilities or magnitudes).
/// </summary>
public sealed record ProfileSpec(string Kind, double? Value = null, double? Start = null, double? End = null, double? Exponent = null,
    double? Min = null, double? Max = null, double? Mean = null, double? Std = null, IReadOnlyList<double>? Values = null)
{
    private double Need(double? v, string field, string where) =>
        v ?? throw new ArgumentException($"{where}: profile kind '{Kind}' needs '{field}'");

    /// <summary>The profile for <paramref name="n"/> features; <paramref name="where"/> names the config field in errors.</summary>
    public float[] Build(int n, Rng rng, string where)
    {
        try { return BuildProfile(n, rng, where); }
        catch (ArgumentException e) when (!e.Message.StartsWith(where, StringComparison.Ordinal))
        {
            throw new ArgumentException($"{where}: {e.Message}", e);
        }
    }

    private float[] BuildProfile(int n, Rng rng, string where) => Kind switch
    {
        "constant" => Profiles.Constant(n, Need(Value, "value", where)),
        "linear" => Profiles.Linear(n, Need(Start, "start", where), Need(End, "end", where)),
        "exponential" => Profiles.Exponential(n, Need(Start, "start", where), Need(End, "end", where)),
        "zipfian" => Profiles.Zipfian(n, Need(Exponent, "exponent", where), Need(Min, "min", where), Need(Max, "max", where)),
        "random" => Profiles.RandomProbabilities(n, Need(Min, "min", where), Need(Max, "max", where), rng),
        "folded_normal" => Profiles.FoldedNormal(n, Need(Mean, "mean", where), Need(Std, "std", where), rng),
        "explicit" => Explicit(n, where),
        _ => throw new ArgumentException($"{where}: unknown profile kind '{Kind}' (expected constant, linear, exponential, zipfian, random, folded_normal or explicit)"),
    };

    private float[] Explicit(int n, string where)
    {
        var v = Values ?? throw new ArgumentException($"{where}: profile kind 'explicit' needs 'values' (one per feature)");
        if (v.Count != n) throw new ArgumentException($"{where}.values has {v.Count} entries, expected one per feature ({n})");
        for (int i = 0; i < v.Count; i++)
            if (!double.IsFinite(v[i])) throw new ArgumentException($"{where}.values[{i}] = {v[i]} is not finite");
        return v.Select(x => (float)x).ToArray();
    }

    /// <summary>An explicit profile holding <paramref name="values"/>.</summary>
    public static ProfileSpec Of(IEnumerable<float> values) => new("explicit", Values: values.Select(v => (double)v).ToArray());
}

/// <summary>
/// The feature hierarchy: either explicit <paramref name="Trees"/> (hierarchy.json nodes — <c>feature_index</c>,
/// <c>children</c>, <c>mutually_exclusive_children</c> — where a bare integer child is a leaf feature, so SAELens's
/// <c>HierarchyNode(0, children=[HierarchyNode(1), ...])</c> is <c>{feature_index: 0, children: [1, ...]}</c>), or a
/// random forest (see <see cref="Hierarchy.RandomForest"/>; depth counts edges below each root).
/// </summary>
public sealed record HierarchySpec(int Roots = 0, int MinBranching = 1, int MaxBranching = 1, int Depth = 0, double MutuallyExclusiveShare = 0,
    int FirstFeature = 0, bool CompensateFiring = false, bool ScaleChildrenByParent = false, System.Text.Json.Nodes.JsonArray? Trees = null)
{
    /// <summary>The forest this spec describes for <paramref name="n"/> features (explicit trees validated, or drawn from <paramref name="rng"/>).</summary>
    public List<HierarchyNode> BuildForest(int n, Rng rng)
    {
        if (Trees is null) return SaeSharp.Synthetic.Hierarchy.RandomForest(Roots, MinBranching, MaxBranching, Depth, MutuallyExclusiveShare, rng, FirstFeature, n);
        if (Roots != 0) throw new ArgumentException("config.hierarchy: give explicit 'trees' or a random forest ('roots', 'depth', ...), not both");
        List<HierarchyNode> roots;
        try { roots = SaeSharp.Synthetic.Hierarchy.FromJson(Trees, "config.hierarchy.trees"); }
        catch (InvalidDataException e) { throw new ArgumentException(e.Message, e); }
        try { SaeSharp.Synthetic.Hierarchy.Validate(roots, n); }
        catch (ArgumentException e) { throw new ArgumentException($"config.hierarchy.trees: {e.Message}", e); }
        return roots;
    }
}

/// <summary>
/// Correlated firing (a Gaussian copula, as SAELens). Kinds: <c>none</c>; <c>low_rank</c> (rank, scale); <c>random</c>
/// (a full matrix from <see cref="Correlations.RandomMatrix"/> with the ratio and strength fields); <c>matrix</c> (the
/// full [n, n] correlation matrix, SAELens's <c>correlation_matrix</c>); <c>pairs</c> ([i, j, ρ] triples, identity
/// elsewhere). <c>stored</c> marks a model assembled from parts, whose correlation lives only in its weights file.
/// </summary>
public sealed record CorrelationSpec(string Kind, int Rank = 0, double Scale = 0, double PositiveRatio = 0.5, double UncorrelatedRatio = 0.3,
    double MinStrength = 0.1, double MaxStrength = 0.8, IReadOnlyList<IReadOnlyList<double>>? Matrix = null, IReadOnlyList<IReadOnlyList<double>>? Pairs = null);

public sealed record OrthogonalizeSpec(int Steps, double Lr, double TargetCosSim = 0);

/// <summary>Everything needed to rebuild a <see cref="SyntheticModel"/> from its seed (config.json).</summary>
/// <remarks>Magnitudes default to SAELens's: every firing feature at 1 (mean) with no spread (std 0).</remarks>
public sealed record SyntheticModelConfig(
    int NumFeatures,
    int HiddenDim,
    ulong Seed,
    ProfileSpec FiringProbabilities,
    ProfileSpec? MeanMagnitudes = null,
    ProfileSpec? StdMagnitudes = null,
    HierarchySpec? Hierarchy = null,
    CorrelationSpec? Correlation = null,
    OrthogonalizeSpec? Orthogonalize = null,
    string Bias = "none",
    double BiasNorm = 1)
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static SyntheticModelConfig FromJson(string json, string where = "config")
    {
        try { return JsonSerializer.Deserialize<SyntheticModelConfig>(json, Json) ?? throw new InvalidDataException($"{where}: config is null"); }
        catch (JsonException e) { throw new InvalidDataException($"{where}: invalid synthetic model config: {e.Message}", e); }
    }

    /// <summary>Parses a JSON tree (e.g. converted from YAML) as a config.</summary>
    public static SyntheticModelConfig FromJson(System.Text.Json.Nodes.JsonNode? json, string where = "config") =>
        FromJson(json?.ToJsonString() ?? "null", where);

    /// <summary>
    /// A config describing a model assembled from a dictionary and a generator: its profiles and hierarchy explicitly;
    /// its dictionary and any correlation (kind <c>stored</c>) exist only in the model's weights.
    /// </summary>
    public static SyntheticModelConfig Describe(FeatureDictionary dictionary, ActivationGenerator generator, IReadOnlyList<HierarchyNode> hierarchy)
    {
        var modifier = generator.Modifiers.OfType<HierarchyModifier>().FirstOrDefault();
        return new SyntheticModelConfig(dictionary.NumFeatures, dictionary.HiddenDim, 0, ProfileSpec.Of(generator.FiringProbabilities),
            ProfileSpec.Of(generator.MeanMagnitudes), ProfileSpec.Of(generator.StdMagnitudes),
            hierarchy.Count == 0 ? null : new HierarchySpec(ScaleChildrenByParent: modifier?.ScaleChildrenByParent ?? false, Trees: SaeSharp.Synthetic.Hierarchy.ToJson(hierarchy)),
            generator.Correlation is null ? null : new CorrelationSpec("stored"));
    }
}

/// <summary>
/// A complete synthetic ground truth: a feature dictionary, an activation generator (firing probabilities, magnitudes,
/// hierarchy, correlation) and the config they came from. Saved as <c>config.json</c> + <c>synthetic_model.safetensors</c>
/// + <c>hierarchy.json</c>.
/// </summary>
public sealed class SyntheticModel
{
    public const string ConfigFile = "config.json", WeightsFile = "synthetic_model.safetensors", HierarchyFile = "hierarchy.json";

    public SyntheticModelConfig Config { get; }
    public FeatureDictionary Dictionary { get; }
    public ActivationGenerator Generator { get; }
    public IReadOnlyList<HierarchyNode> Hierarchy { get; }
    /// <summary>Requested marginal firing rates (before hierarchy compensation).</summary>
    public float[] TargetFiringProbabilities { get; }

    private SyntheticModel(SyntheticModelConfig config, FeatureDictionary dictionary, ActivationGenerator generator,
        IReadOnlyList<HierarchyNode> hierarchy, float[] targets)
    {
        Config = config; Dictionary = dictionary; Generator = generator; Hierarchy = hierarchy; TargetFiringProbabilities = targets;
    }

    /// <summary>
    /// A model from parts built elsewhere (as SAELens pairs a <c>FeatureDictionary</c> with an <c>ActivationGenerator</c>):
    /// its hierarchy is the generator's <see cref="HierarchyModifier"/> trees, its targets the generator's firing
    /// probabilities, its config <paramref name="config"/> or else <see cref="SyntheticModelConfig.Describe"/>. It trains,
    /// evaluates, saves and loads like a built one (<see cref="SyntheticActivationSource"/>, SyntheticRun, Save/Load).
    /// </summary>
    public SyntheticModel(FeatureDictionary dictionary, ActivationGenerator generator, SyntheticModelConfig? config = null)
    {
        if (generator.NumFeatures != dictionary.NumFeatures)
            throw new ArgumentException($"the generator has {generator.NumFeatures} features, the dictionary {dictionary.NumFeatures}");
        var roots = generator.Modifiers.OfType<HierarchyModifier>().SelectMany(m => m.Roots).ToList();
        if (config is not null && (config.NumFeatures != dictionary.NumFeatures || config.HiddenDim != dictionary.HiddenDim))
            throw new ArgumentException($"config says {config.NumFeatures} features in {config.HiddenDim} dimensions, the dictionary has {dictionary.NumFeatures} in {dictionary.HiddenDim}");
        Config = config ?? SyntheticModelConfig.Describe(dictionary, generator, roots);
        Dictionary = dictionary; Generator = generator; Hierarchy = roots; TargetFiringProbabilities = generator.FiringProbabilities;
    }

    public static readonly IReadOnlyList<string> PresetNames = ["toy", "synth-sae-bench-16k"];

    /// <summary>
    /// <c>toy</c>: 64 features in 32 dimensions with a small hierarchy and correlation (builds in milliseconds).
    /// <c>synth-sae-bench-16k</c>: 16,384 features in 768 dimensions, zipfian(0.5) firing in [5e-4, 0.4], 128 roots ×
    /// branching 4 × depth 3 with mutually exclusive children, low-rank correlation (rank 25, scale 0.1), 100 Adam
    /// orthogonalisation steps at lr 3e-4, mean magnitudes linear 5 → 4, std folded-normal(0.5, 0.5).
    /// </summary>
    public static SyntheticModelConfig Preset(string name, ulong seed = 42) => name switch
    {
        "toy" => new SyntheticModelConfig(64, 32, seed,
            new ProfileSpec("zipfian", Exponent: 1.0, Min: 0.02, Max: 0.3),
            new ProfileSpec("linear", Start: 1.5, End: 1.0),
            new ProfileSpec("constant", Value: 0.1),
            new HierarchySpec(Roots: 4, MinBranching: 2, MaxBranching: 3, Depth: 1, MutuallyExclusiveShare: 0.5),
            new CorrelationSpec("random", PositiveRatio: 0.5, UncorrelatedRatio: 0.9, MinStrength: 0.05, MaxStrength: 0.3),
            new OrthogonalizeSpec(50, 0.01)),
        "synth-sae-bench-16k" => new SyntheticModelConfig(16_384, 768, seed,
            new ProfileSpec("zipfian", Exponent: 0.5, Min: 5e-4, Max: 0.4),
            new ProfileSpec("linear", Start: 5, End: 4),
            new ProfileSpec("folded_normal", Mean: 0.5, Std: 0.5),
            new HierarchySpec(Roots: 128, MinBranching: 4, MaxBranching: 4, Depth: 3, MutuallyExclusiveShare: 1.0),
            new CorrelationSpec("low_rank", Rank: 25, Scale: 0.1),
            new OrthogonalizeSpec(100, 3e-4)),
        _ => throw new ArgumentException($"unknown synthetic preset '{name}' (expected {string.Join(" or ", PresetNames)})"),
    };

    /// <summary>Builds the model from its config; every random choice comes from one generator seeded with config.seed.</summary>
    public static SyntheticModel Build(SyntheticModelConfig config, Compute compute)
    {
        if (config.NumFeatures <= 0) throw new ArgumentException($"config.num_features must be positive, got {config.NumFeatures}");
        if (config.HiddenDim <= 0) throw new ArgumentException($"config.hidden_dim must be positive, got {config.HiddenDim}");
        int n = config.NumFeatures;
        var rng = new Rng(config.Seed);
        var bias = ParseBias(config.Bias);
        var ortho = config.Orthogonalize;
        var dictionary = FeatureDictionary.CreateRandom(n, config.HiddenDim, rng.Fork(), compute, bias, (float)config.BiasNorm,
            ortho?.Steps ?? 0, (float)(ortho?.Lr ?? 0.01), (float)(ortho?.TargetCosSim ?? 0));
        var targets = config.FiringProbabilities.Build(n, rng.Fork(), "config.firing_probabilities");
        var means = (config.MeanMagnitudes ?? DefaultMean).Build(n, rng.Fork(), "config.mean_magnitudes");
        var stds = (config.StdMagnitudes ?? DefaultStd).Build(n, rng.Fork(), "config.std_magnitudes");
        CheckRange(targets, 0, 1, "config.firing_probabilities");
        CheckRange(stds, 0, double.PositiveInfinity, "config.std_magnitudes");
        List<HierarchyNode> roots = [];
        var probs = targets;
        var h = config.Hierarchy;
        if (h is not null)
        {
            roots = h.BuildForest(n, rng.Fork());
            if (h.CompensateFiring) probs = SaeSharp.Synthetic.Hierarchy.CompensateFiringProbabilities(targets, roots);
        }
        var correlation = BuildCorrelation(config.Correlation, n, rng.Fork());
        return Assemble(config, dictionary, probs, means, stds, roots, correlation, targets);
    }

    public static SyntheticModel BuildPreset(string name, Compute compute, ulong seed = 42) => Build(Preset(name, seed), compute);

    private static readonly ProfileSpec DefaultMean = new("constant", Value: 1), DefaultStd = new("constant", Value: 0);

    private static void CheckRange(float[] values, double min, double max, string where)
    {
        for (int i = 0; i < values.Length; i++)
            if (!(values[i] >= min && values[i] <= max))
                throw new ArgumentException($"{where}[{i}] = {values[i]} is outside [{min}, {max}]");
    }

    private static DictionaryBias ParseBias(string s) => s switch
    {
        "none" => DictionaryBias.None,
        "random_unit" => DictionaryBias.RandomUnit,
        "given_norm" => DictionaryBias.GivenNorm,
        _ => throw new ArgumentException($"config.bias: expected none, random_unit or given_norm, got '{s}'"),
    };

    private static CorrelationStructure? BuildCorrelation(CorrelationSpec? spec, int n, Rng rng) => spec?.Kind switch
    {
        null or "none" => null,
        "low_rank" => Correlations.RandomLowRank(n, spec.Rank, (float)spec.Scale, rng),
        "random" => new FullCorrelation(Correlations.RandomMatrix(n, rng, spec.PositiveRatio, spec.UncorrelatedRatio, spec.MinStrength, spec.MaxStrength)),
        "matrix" => Full(MatrixOf(spec, n), "config.correlation.matrix"),
        "pairs" => Full(PairsOf(spec, n), "config.correlation.pairs"),
        "stored" => throw new ArgumentException("config.correlation.kind 'stored': this model's correlation exists only in its synthetic_model.safetensors; load the folder (SyntheticModel.Load) instead of building from the config"),
        _ => throw new ArgumentException($"config.correlation.kind: expected none, low_rank, random, matrix or pairs, got '{spec.Kind}'"),
    };

    private static FullCorrelation Full(Tensor matrix, string where)
    {
        try { return new FullCorrelation(matrix); }
        catch (ArgumentException e) { throw new ArgumentException($"{where}: {e.Message}", e); }
    }

    private static Tensor MatrixOf(CorrelationSpec spec, int n)
    {
        var rows = spec.Matrix ?? throw new ArgumentException("config.correlation: kind 'matrix' needs 'matrix' (num_features rows of num_features numbers)");
        if (rows.Count != n) throw new ArgumentException($"config.correlation.matrix has {rows.Count} rows, expected {n}");
        var m = new Tensor(n, n);
        for (int i = 0; i < n; i++)
        {
            if (rows[i].Count != n) throw new ArgumentException($"config.correlation.matrix[{i}] has {rows[i].Count} entries, expected {n}");
            for (int j = 0; j < n; j++) m[i, j] = (float)rows[i][j];
        }
        return m;
    }

    private static Tensor PairsOf(CorrelationSpec spec, int n)
    {
        var pairs = spec.Pairs ?? throw new ArgumentException("config.correlation: kind 'pairs' needs 'pairs' ([i, j, correlation] triples)");
        var m = new Tensor(n, n);
        for (int i = 0; i < n; i++) m[i, i] = 1;
        for (int t = 0; t < pairs.Count; t++)
        {
            var p = pairs[t];
            if (p.Count != 3 || p[0] != Math.Floor(p[0]) || p[1] != Math.Floor(p[1]) || p[0] < 0 || p[1] < 0 || p[0] >= n || p[1] >= n || p[0] == p[1])
                throw new ArgumentException($"config.correlation.pairs[{t}] must be [i, j, correlation] with distinct features i, j in [0, {n})");
            if (!(Math.Abs(p[2]) <= 1)) throw new ArgumentException($"config.correlation.pairs[{t}]: correlation {p[2]} is outside [-1, 1]");
            m[(int)p[0], (int)p[1]] = m[(int)p[1], (int)p[0]] = (float)p[2];
        }
        return m;
    }

    private static SyntheticModel Assemble(SyntheticModelConfig config, FeatureDictionary dictionary, float[] probs, float[] means, float[] stds,
        List<HierarchyNode> roots, CorrelationStructure? correlation, float[] targets)
    {
        var modifiers = new List<IActivationModifier>();
        if (roots.Count > 0) modifiers.Add(new HierarchyModifier(roots, config.Hierarchy?.ScaleChildrenByParent ?? false));
        var gen = new ActivationGenerator(probs, means, stds, modifiers, correlation);
        return new SyntheticModel(config, dictionary, gen, roots, targets);
    }

    /// <summary>Feature activations [batch, num_features] and hidden activations [batch, hidden_dim].</summary>
    public (Tensor Features, Tensor Hidden) Sample(int batch, Rng rng, Compute compute) =>
        Generator.SampleHidden(Dictionary, batch, rng, compute);

    /// <summary><see cref="Sample"/> with the feature activations as sparse codes (the same draws; no dense rows).</summary>
    public (SparseCodes Features, Tensor Hidden) SampleCodes(int batch, Rng rng, Compute compute) =>
        Generator.SampleHiddenCodes(Dictionary, batch, rng, compute);

    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var w = new SafetensorsWriter()
            .Add("feature_vectors", Dictionary.FeatureVectors)
            .Add("bias", Dictionary.Bias)
            .Add("firing_probabilities", Tensor.FromArray(Generator.FiringProbabilities, Config.NumFeatures))
            .Add("target_firing_probabilities", Tensor.FromArray(TargetFiringProbabilities, Config.NumFeatures))
            .Add("mean_magnitudes", Tensor.FromArray(Generator.MeanMagnitudes, Config.NumFeatures))
            .Add("std_magnitudes", Tensor.FromArray(Generator.StdMagnitudes, Config.NumFeatures));
        switch (Generator.Correlation)
        {
            case FullCorrelation f: w.Add("correlation_matrix", f.Matrix); break;
            case LowRankCorrelation l: w.Add("correlation_factor", l.Factor).Add("correlation_diagonal", l.Diagonal); break;
        }
        w.Write(Path.Combine(directory, WeightsFile));
        SaeSharp.Synthetic.Hierarchy.Save(Path.Combine(directory, HierarchyFile), Hierarchy);
        // Config last: a folder with a config.json is complete.
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), Config.ToJson());
    }

    /// <summary>Loads a saved model without re-running any random construction (orthogonalisation included).</summary>
    public static SyntheticModel Load(string directory)
    {
        string cfgPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{cfgPath}: synthetic model config not found", cfgPath);
        var config = SyntheticModelConfig.FromJson(File.ReadAllText(cfgPath), cfgPath);
        int n = config.NumFeatures, d = config.HiddenDim;
        using var st = SafetensorsFile.Open(Path.Combine(directory, WeightsFile));
        var v = st.ReadFloat32("feature_vectors", n, d);
        var bias = st.ReadFloat32("bias", d);
        float[] Vec(string name) => st.ReadFloat32(name, n).ToArray();
        CorrelationStructure? corr = null;
        if (st.Contains("correlation_matrix")) corr = new FullCorrelation(st.ReadFloat32("correlation_matrix", n, n));
        else if (st.Contains("correlation_factor"))
        {
            var f = st.ReadFloat32("correlation_factor");
            if (f.Rank != 2 || f.Dim(0) != n) throw new InvalidDataException($"{st.Path}: correlation_factor has shape [{f.ShapeString}], expected [{n}, rank]");
            corr = new LowRankCorrelation(f, st.ReadFloat32("correlation_diagonal", n));
        }
        var hierarchyPath = Path.Combine(directory, HierarchyFile);
        var roots = File.Exists(hierarchyPath) ? SaeSharp.Synthetic.Hierarchy.Load(hierarchyPath) : [];
        try { SaeSharp.Synthetic.Hierarchy.Validate(roots, n); }
        catch (ArgumentException e) { throw new InvalidDataException($"{hierarchyPath}: {e.Message}", e); }
        return Assemble(config, new FeatureDictionary(v, bias), Vec("firing_probabilities"), Vec("mean_magnitudes"), Vec("std_magnitudes"),
            roots, corr, Vec("target_firing_probabilities"));
    }
}
