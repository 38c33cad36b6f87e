using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Evals;

/// <summary>What replaces an SAE's hook in the ablated run that <c>ce_loss_score</c> and <c>kl_div_score</c> compare against.</summary>
public enum Ablation { Zero, Mean }

/// <summary>Options of <see cref="SaeEvaluator"/>.</summary>
public sealed record EvalOptions
{
    /// <summary>Tokens whose positions are neither spliced nor ablated nor counted (SAELens ignore_tokens: BOS, EOS, pad).</summary>
    public IReadOnlyCollection<int> ExcludeTokens { get; init; } = [];
    public Ablation Ablation { get; init; } = Ablation.Zero;
    /// <summary>The per-latent weight statistics (norms, biases, cosines; SAELens compute_featurewise_weight_based_metrics).</summary>
    public bool WeightMetrics { get; init; } = true;
}

/// <summary>
/// The evaluation of one SAE: its metrics by SAELens group (model_behavior_preservation,
/// model_performance_preservation, reconstruction_quality, shrinkage, sparsity, misc_metrics from SAEBench core,
/// token_stats) and its per-feature arrays by SAELens name.
/// </summary>
public sealed record SaeEvalResult(HookedSae Sae, IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>> Metrics,
    IReadOnlyDictionary<string, float[]> FeatureMetrics)
{
    /// <summary>A metric by name, whatever its group.</summary>
    public double this[string name] =>
        Metrics.Values.Select(g => g.TryGetValue(name, out var v) ? (double?)v : null).FirstOrDefault(v => v is not null)
        ?? throw new KeyNotFoundException($"no metric '{name}'");
}

/// <summary>
/// SAELens's evaluation (sae_lens/evals.py run_evals with every metric on) of several SAEs of one model in one pass
/// over token batches. Per batch the model runs clean once (logits and every SAE's hooks), each SAE's forward is
/// taken on the clean activations, then per SAE one spliced run (its output written at its output hook, which in a
/// run patched at one site sees exactly the clean input) and one ablated run per distinct output site (zero or mean).
/// A patched run is the clean run up to the block of its hook, so it resumes there from the clean residual stream
/// (<see cref="ResidualStart"/>): one SAE costs one forward plus two partial ones. Positions of excluded tokens keep
/// the model's own activations in every patched run and count in no metric.
/// </summary>
public sealed class SaeEvaluator
{
    private readonly LatentStream _stream;
    private readonly EvalOptions _options;
    private readonly Compute _compute;
    private readonly PerSae[] _state;
    private readonly Dictionary<(string, int?), float[]> _means = [];
    private RunningMean _cleanCe;
    private long _contexts, _tokens;

    private sealed class PerSae(HookedSae sae)
    {
        public readonly HookedSae Sae = sae;
        public readonly ReconstructionStats Reconstruction = new(sae.Site.OutputWidth);
        public readonly FeatureStats Features = new(sae.Sae.Config.DSae);
        public RunningMean CeSae, CeAblation, KlSae, KlAblation;
    }

    public SaeEvaluator(HookedTransformer model, IReadOnlyList<HookedSae> saes, EvalOptions options, Compute compute)
    {
        _stream = new LatentStream(model, saes, options.ExcludeTokens, saes.Select(s => ResumeHook(model, s.Site)).OfType<string>());
        _options = options;
        _compute = compute;
        _state = saes.Select(s => new PerSae(s)).ToArray();
    }

    /// <summary>
    /// Mean ablation: the mean activation at each SAE's output site over the kept positions of
    /// <paramref name="sequences"/> (a pass through the model up to the last hook needed). Needed before
    /// <see cref="Add"/> when the ablation is <see cref="Ablation.Mean"/>.
    /// </summary>
    public void EstimateMeans(IEnumerable<int[]> sequences, int batchSize)
    {
        var sums = new Dictionary<(string, int?), (SaeSite Site, ActivationMean Mean)>();
        foreach (var s in _state)
            sums.TryAdd(Key(s.Sae.Site), (s.Sae.Site, new ActivationMean(s.Sae.Site.OutputWidth)));
        var hooks = sums.Values.Select(v => v.Site.OutputHook).Distinct().ToArray();
        foreach (var batch in sequences.Chunk(batchSize))
        {
            var clean = _stream.Model.RunBatch(batch, hooks, returnLogits: false);
            var keep = _stream.KeepMask(batch);
            foreach (var (site, mean) in sums.Values) mean.Add(site.GatherOutput(clean.Cache[site.OutputHook]), keep);
        }
        foreach (var (key, (_, mean)) in sums)
        {
            if (mean.Count == 0) throw new InvalidDataException("mean ablation: the sequences hold no kept position to average");
            _means[key] = mean.Mean();
        }
    }

    /// <summary>Evaluates every SAE on one batch of sequences (contexts).</summary>
    public void Add(IReadOnlyList<int[]> sequences)
    {
        var batch = _stream.Run(sequences, withLogits: true);
        var reference = new LogitComparison(batch.Logits!, sequences, batch.Keep, _compute);
        _cleanCe.Add(reference.CleanCrossEntropy.Sum, reference.CleanCrossEntropy.Count);
        _contexts += sequences.Count;
        _tokens += sequences.Sum(s => (long)s.Length);
        var ablated = new Dictionary<(string, int?), (RunningMean Ce, RunningMean Kl)>();
        for (int i = 0; i < _state.Length; i++)
        {
            var s = _state[i];
            var acts = batch.Saes[i];
            var site = s.Sae.Site;
            s.Reconstruction.Add(acts.Target, acts.Forward.Output, batch.Keep);
            s.Features.Add(acts.Forward, batch.Keep, batch.SeqLen);

            var spliced = Patched(batch, site, new HookSet().AddReplacement(site, acts.Forward.Output, batch.Keep));
            var (ce, kl) = reference.Compare(spliced);
            s.CeSae.Add(ce.Sum, ce.Count);
            s.KlSae.Add(kl.Sum, kl.Count);

            if (!ablated.TryGetValue(Key(site), out var abl))
            {
                var hooks = _options.Ablation == Ablation.Zero
                    ? new HookSet().AddZeroAblation(site, batch.Keep)
                    : new HookSet().AddMeanAblation(site, _means.TryGetValue(Key(site), out var m) ? m
                        : throw new InvalidOperationException("mean ablation needs EstimateMeans first"), batch.Keep);
                abl = ablated[Key(site)] = reference.Compare(Patched(batch, site, hooks));
            }
            s.CeAblation.Add(abl.Ce.Sum, abl.Ce.Count);
            s.KlAblation.Add(abl.Kl.Sum, abl.Kl.Count);
        }
    }

    /// <summary>Evaluates <paramref name="sequences"/> in batches of <paramref name="batchSize"/>, reporting after each batch.</summary>
    public void AddAll(IEnumerable<int[]> sequences, int batchSize, Action<int>? afterBatch = null, CancellationToken cancel = default)
    {
        int n = 0;
        foreach (var batch in sequences.Chunk(batchSize))
        {
            cancel.ThrowIfCancellationRequested();
            Add(batch);
            afterBatch?.Invoke(++n);
        }
    }

    /// <summary>Contexts and tokens run so far.</summary>
    public (long Contexts, long Tokens) Seen => (_contexts, _tokens);

    /// <summary>The running L0, explained variance and CE with the SAE of SAE <paramref name="index"/> (for progress lines).</summary>
    public (double L0, double ExplainedVariance, double CeWithSae) Progress(int index) =>
        (_state[index].Features.L0, _state[index].Reconstruction.ExplainedVariance, _state[index].CeSae.Mean);

    /// <summary>The metrics of every SAE over all batches added.</summary>
    public IReadOnlyList<SaeEvalResult> Results()
    {
        if (_contexts == 0) throw new InvalidOperationException("no batch was evaluated");
        return _state.Select(Result).ToArray();
    }

    private SaeEvalResult Result(PerSae s)
    {
        var r = s.Reconstruction;
        double ceOrig = _cleanCe.Mean, ceSae = s.CeSae.Mean, ceAbl = s.CeAblation.Mean;
        double klSae = s.KlSae.Mean, klAbl = s.KlAblation.Mean;
        var features = new Dictionary<string, float[]>
        {
            ["feature_density"] = s.Features.FeatureDensity(),
            ["consistent_activation_heuristic"] = s.Features.ConsistentActivationHeuristic(),
        };
        float[]? maxEnc = null, maxDec = null;
        if (_options.WeightMetrics)
        {
            var sae = s.Sae.Sae;
            features["encoder_norm"] = FeatureWeights.EncoderNorms(sae);
            features["encoder_bias"] = FeatureWeights.EncoderBias(sae);
            if (WeightStatistics.EncoderDecoderCosines(sae) is { } cos) features["encoder_decoder_cosine_sim"] = cos;
            features["max_encoder_cosine_sim"] = maxEnc = FeatureWeights.MaxEncoderCosine(sae, _compute);
            features["max_decoder_cosine_sim"] = maxDec = FeatureWeights.MaxDecoderCosine(sae, _compute);
        }
        var groups = new Dictionary<string, IReadOnlyDictionary<string, double>>
        {
            ["model_behavior_preservation"] = new Dictionary<string, double>
            {
                ["kl_div_score"] = (klAbl - klSae) / klAbl,
                ["kl_div_with_ablation"] = klAbl,
                ["kl_div_with_sae"] = klSae,
            },
            ["model_performance_preservation"] = new Dictionary<string, double>
            {
                ["ce_loss_score"] = (ceAbl - ceSae) / (ceAbl - ceOrig),
                ["ce_loss_with_ablation"] = ceAbl,
                ["ce_loss_with_sae"] = ceSae,
                ["ce_loss_without_sae"] = ceOrig,
            },
            ["reconstruction_quality"] = new Dictionary<string, double>
            {
                ["explained_variance"] = r.ExplainedVariance,
                ["explained_variance_legacy"] = r.ExplainedVarianceLegacy,
                ["mse"] = r.Mse,
                ["cossim"] = r.CosineSimilarity,
            },
            ["shrinkage"] = new Dictionary<string, double>
            {
                ["l2_norm_in"] = r.L2NormIn,
                ["l2_norm_out"] = r.L2NormOut,
                ["l2_ratio"] = r.L2Ratio,
                ["relative_reconstruction_bias"] = r.RelativeReconstructionBias,
            },
            ["sparsity"] = new Dictionary<string, double> { ["l0"] = s.Features.L0, ["l1"] = s.Features.L1 },
            ["misc_metrics"] = FeatureSummary.Misc(features["feature_density"], maxEnc, maxDec),
            ["token_stats"] = new Dictionary<string, double>
            {
                ["total_tokens_eval_reconstruction"] = _tokens,
                ["total_tokens_eval_sparsity_variance"] = _tokens,
                ["contexts"] = _contexts,
                ["positions_ce_loss"] = s.CeSae.Count,
                ["positions_kl_div"] = s.KlSae.Count,
                ["positions_reconstruction"] = r.Count,
            },
        };
        return new SaeEvalResult(s.Sae, groups, features);
    }

    /// <summary>Logits of a run patched at <paramref name="site"/>'s output hook, resumed at its block from the clean residual.</summary>
    private Tensor Patched(LatentBatch batch, SaeSite site, HookSet hooks)
    {
        var model = _stream.Model;
        var start = ResumeHook(model, site) is string h ? new ResidualStart(model.BlockOf(site.OutputHook), batch.Cache[h]) : null;
        return model.RunBatch(batch.Sequences, hooks: hooks, start: start).Logits!;
    }

    /// <summary>The clean hook holding the residual stream entering the block of the site's output hook; null for the embeddings.</summary>
    private static string? ResumeHook(HookedTransformer model, SaeSite site)
    {
        int block = model.BlockOf(site.OutputHook), last = model.Config.NLayers - 1;
        return block < 0 ? null : block <= last ? $"blocks.{block}.hook_resid_pre" : $"blocks.{last}.hook_resid_post";
    }

    private static (string, int?) Key(SaeSite site) => (site.OutputHook, site.OutputHeadIndex);
}
