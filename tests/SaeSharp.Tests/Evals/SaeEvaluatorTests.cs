using SaeSharp.Data;
using SaeSharp.Evals;
using SaeSharp.Saes;
using SaeSharp.Models;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Evals;

/// <summary>The whole evaluation on stories260K with SAEs whose scores are known: exact, zero, the mean, and BOS-heavy input.</summary>
public class SaeEvaluatorTests
{
    private const string Hook = "blocks.2.hook_resid_post";

    private static IReadOnlyList<SaeEvalResult> Evaluate(HookedTransformer m, IReadOnlyList<HookedSae> saes, IReadOnlyList<int[]> seqs,
        EvalOptions? options = null, int batch = 4)
    {
        var e = new SaeEvaluator(m, saes, options ?? new EvalOptions { ExcludeTokens = ActivationStore.SpecialTokens(m.Config).ToArray() }, Compute.All);
        if ((options?.Ablation ?? Ablation.Zero) == Ablation.Mean) e.EstimateMeans(seqs, batch);
        e.AddAll(seqs, batch);
        return e.Results();
    }

    [SharedFact(StoriesWeights, StoriesTokenizer, Corpus)]
    public void AnExactSaeScoresOneAndZeroKl()
    {
        var m = LoadStories();
        var contexts = TextContexts(m, 6, 32);
        var r = Evaluate(m, [Hooked(m, Identity(64, Metadata(Hook)))], contexts)[0];
        Assert.Equal(1, r["ce_loss_score"], 1e-5);
        Assert.Equal(1, r["kl_div_score"], 1e-6);
        Assert.True(Math.Abs(r["kl_div_with_sae"]) < 1e-6, $"KL {r["kl_div_with_sae"]}");
        Assert.Equal(r["ce_loss_without_sae"], r["ce_loss_with_sae"], 1e-5);
        Assert.True(r["ce_loss_with_ablation"] > r["ce_loss_without_sae"], $"ablation CE {r["ce_loss_with_ablation"]} vs clean {r["ce_loss_without_sae"]}");
        Assert.Equal(1, r["explained_variance"], 1e-6);
        Assert.Equal(0, r["mse"], 1e-8);
        Assert.Equal(1, r["cossim"], 1e-6);
        Assert.Equal(1, r["l2_ratio"], 1e-6);
        Assert.Equal(64, r["l0"], 1e-9);                  // every row has all 64 coordinates non-zero on one side
        int special = contexts.Sum(c => c.Count(t => t == 1));     // BOS begins every context and separates stories
        Assert.Equal(6 * 32 - special, r["positions_kl_div"]);
        Assert.Equal(6 * 31 - contexts.Sum(c => c[..^1].Count(t => t == 1)), r["positions_ce_loss"]);
    }

    [SharedFact(StoriesWeights)]
    public void ActivationNormalisationIsUndoneOnTheSplicedOutput()
    {
        // constant_norm_rescale and layer_norm run inside the SAE: an exact SAE under either still reproduces the model.
        var m = LoadStories();
        var seqs = Sequences(m, 3, 16, bos: 1, seed: 2);
        foreach (var norm in new[] { "constant_norm_rescale", "layer_norm" })
        {
            var exact = Identity(64, Metadata(Hook));
            var sae = SaeSharp.Saes.SaeRegistry.Create(exact.Config with { NormalizeActivations = norm }, Compute.All);
            foreach (var (name, t) in exact.Params) t.Span.CopyTo(sae.Params[name].Span);
            var r = Evaluate(m, [Hooked(m, sae)], seqs)[0];
            Assert.True(r["explained_variance"] > 1 - 1e-6, $"{norm}: EV {r["explained_variance"]}");
            Assert.True(Math.Abs(r["ce_loss_score"] - 1) < 1e-3, $"{norm}: ce_loss_score {r["ce_loss_score"]}");
        }
    }

    [SharedFact(StoriesWeights)]
    public void AnSaeThatOutputsZerosIsZeroAblation()
    {
        var m = LoadStories();
        var seqs = Sequences(m, 4, 24, bos: 1, seed: 3);
        foreach (var arch in new[] { "standard", "topk", "jumprelu" })
        {
            var r = Evaluate(m, [Hooked(m, Zero(arch, 64, Metadata(Hook)))], seqs)[0];
            Assert.Equal(r["ce_loss_with_ablation"], r["ce_loss_with_sae"]);
            Assert.Equal(r["kl_div_with_ablation"], r["kl_div_with_sae"]);
            Assert.Equal(0, r["ce_loss_score"]);
            Assert.Equal(0, r["kl_div_score"]);
            Assert.Equal(0, r["l0"]);
        }
    }

    [SharedFact(StoriesWeights)]
    public void AnSaeThatOutputsTheMeanIsMeanAblation()
    {
        var m = LoadStories();
        var seqs = Sequences(m, 5, 16, bos: 1, seed: 4);
        var stream = new LatentStream(m, [Hooked(m, Identity(64, Metadata(Hook)))], [1, 2]);
        var mean = new ActivationMean(64);
        foreach (var chunk in seqs.Chunk(2)) { var b = stream.Run(chunk); mean.Add(b.Saes[0].Input, b.Keep); }
        var sae = Zero("standard", 64, Metadata(Hook));
        mean.Mean().CopyTo(sae.BDec.Span);
        var options = new EvalOptions { ExcludeTokens = [1, 2], Ablation = Ablation.Mean };
        var r = Evaluate(m, [Hooked(m, sae)], seqs, options)[0];
        Assert.Equal(r["ce_loss_with_ablation"], r["ce_loss_with_sae"], 1e-9);
        Assert.Equal(0, r["ce_loss_score"], 1e-6);
        Assert.Equal(0, r["explained_variance"], 1e-6); // predicting the mean explains nothing
    }

    [SharedFact(StoriesWeights)]
    public void SpecialTokensAreExcludedFromSpliceAndMetrics()
    {
        // BOS-heavy: every third token is BOS (1) or EOS (2).
        var m = LoadStories();
        var seqs = Sequences(m, 4, 30, bos: 1, seed: 9);
        foreach (var s in seqs) for (int i = 3; i < s.Length; i += 3) s[i] = i % 2 == 0 ? 1 : 2;
        var sae = Hooked(m, Random("topk", 64, Metadata(Hook)));
        var excluded = Evaluate(m, [sae], seqs)[0];
        var included = Evaluate(m, [sae], seqs, new EvalOptions())[0];

        // Independent check: next-token losses from single-sequence forwards, counted where the predicting token is not special.
        double sum = 0, sumAll = 0;
        int n = 0, kept = 0;
        foreach (var s in seqs)
        {
            var lp = m.TokenLogProbs(s);
            for (int t = 0; t < lp.Length; t++)
            {
                sumAll -= lp[t];
                if (s[t] is 1 or 2) continue;
                sum -= lp[t]; n++;
            }
            kept += s.Count(tok => tok is not (1 or 2));
        }
        Assert.Equal(n, excluded["positions_ce_loss"]);
        Assert.Equal(kept, excluded["positions_kl_div"]);
        Assert.Equal(kept, excluded["positions_reconstruction"]);
        Assert.Equal(sum / n, excluded["ce_loss_without_sae"], 1e-5);
        Assert.Equal(4 * 29, included["positions_ce_loss"]);
        Assert.Equal(4 * 30, included["positions_kl_div"]);
        Assert.Equal(sumAll / (4 * 29), included["ce_loss_without_sae"], 1e-5);
        // Excluded positions keep the model's activation in the spliced run, so the losses differ from splicing everywhere.
        Assert.NotEqual(included["kl_div_with_sae"], excluded["kl_div_with_sae"]);
    }

    [SharedFact(StoriesWeights)]
    public void SeveralSaesInOnePassEqualEachAlone()
    {
        var m = LoadStories();
        var seqs = Sequences(m, 5, 20, bos: 1, seed: 5);
        var a = Hooked(m, Random("topk", 64, Metadata(Hook)), "a");
        var b = Hooked(m, Random("jumprelu", 64, Metadata("blocks.0.hook_mlp_out"), seed: 8), "b");
        var c = Hooked(m, Random("transcoder", 64, Metadata("blocks.3.ln2.hook_normalized", hookOut: "blocks.3.hook_mlp_out"), dOut: 64), "c");
        var together = Evaluate(m, [a, b, c], seqs);
        var alone = new[] { a, b, c }.Select(s => Evaluate(m, [s], seqs)[0]).ToArray();
        for (int i = 0; i < 3; i++)
            foreach (var (group, values) in alone[i].Metrics)
                foreach (var (k, v) in values) Assert.Equal(v, together[i].Metrics[group][k]);
        Assert.Equal(alone[2].FeatureMetrics["feature_density"], together[2].FeatureMetrics["feature_density"]);
    }

    [SharedFact(StoriesWeights)]
    public void PatchedRunsResumedAtTheHooksBlockMatchFullRuns()
    {
        // The evaluator resumes spliced and ablated runs from the clean residual; full forwards with the live hooks agree.
        var m = LoadStories();
        var seqs = Sequences(m, 4, 12, bos: 1, seed: 12);
        var sae = Hooked(m, Random("gated", 8, Metadata("blocks.3.attn.hook_z", head: 6)));
        var r = Evaluate(m, [sae], seqs, new EvalOptions(), batch: 4)[0];
        var keep = new bool[4 * 12];
        Array.Fill(keep, true);
        var reference = new LogitComparison(m.RunBatch(seqs).Logits!, seqs, keep, Compute.All);
        var spliced = reference.Compare(m.RunBatch(seqs, hooks: new HookSet().AddSae(sae)).Logits!);
        var ablated = reference.Compare(m.RunBatch(seqs, hooks: new HookSet().AddZeroAblation(sae.Site)).Logits!);
        Assert.Equal(spliced.CrossEntropy.Mean, r["ce_loss_with_sae"], 1e-9);
        Assert.Equal(spliced.Kl.Mean, r["kl_div_with_sae"], 1e-9);
        Assert.Equal(ablated.CrossEntropy.Mean, r["ce_loss_with_ablation"], 1e-9);
        Assert.Equal(ablated.Kl.Mean, r["kl_div_with_ablation"], 1e-9);
    }

    [SharedFact(StoriesWeights)]
    public void TranscoderReconstructionIsMeasuredAgainstItsOutputHook()
    {
        var m = LoadStories();
        var seqs = Sequences(m, 3, 16, bos: 1, seed: 6);
        var tc = Hooked(m, Random("skip_transcoder", 64, Metadata("blocks.1.ln2.hook_normalized", hookOut: "blocks.1.hook_mlp_out"), dOut: 64));
        var r = Evaluate(m, [tc], seqs, new EvalOptions(), batch: 3)[0];
        var batch = new LatentStream(m, [tc]).Run(seqs);
        var target = m.RunBatch(seqs, ["blocks.1.hook_mlp_out"]).Cache["blocks.1.hook_mlp_out"].Reshape(-1, 64);
        Assert.Equal(target.ToArray(), batch.Saes[0].Target.ToArray());
        double ev = Reconstruction.ExplainedVariance(target, batch.Saes[0].Forward.Output);
        Assert.True(Math.Abs(ev - r["explained_variance"]) < 1e-7 * Math.Abs(ev), $"{ev} vs {r["explained_variance"]}");
        Assert.True(double.IsFinite(r["ce_loss_score"]) && double.IsFinite(r["kl_div_score"]));
    }
}
