using SaeSharp.Analysis;
using SaeSharp.Models;
using static SaeSharp.Tests.Analysis.SteeringHooksTests;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Analysis;

/// <summary>The effect measures of a steered run against float64 softmaxes of the two models' logits on its tokens.</summary>
public class SteeringEffectsTests
{
    private const string Hook = "blocks.2.hook_resid_post";

    private static double[] LogSoftmax(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (float v in logits) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in logits) sum += Math.Exp(v - max);
        var r = new double[logits.Length];
        for (int i = 0; i < r.Length; i++) r[i] = logits[i] - max - Math.Log(sum);
        return r;
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void KlPerGeneratedTokenAndLogitChangesMatchTheLogitsOfBothModels()
    {
        var m = LoadStories();
        var s = Steering(m, Random("topk", 64, Metadata(Hook), dSae: 64));
        var prompt = s.EncodePrompt("Once upon a time, there was");
        var iv = s.Intervention([new SteeringFeature(12, 2.5), new SteeringFeature(30, -1)]) with { Positions = SteeringPositions.Prompt };
        var run = s.Run(prompt, iv, s.Options(10, 0.8f, 0.9f), "steered");
        var effects = run.Effects!;
        Assert.Equal(run.Generated.Length, effects.Kl.Length);
        int[] all = run.Tokens;
        var steered = m.Forward(all, new HookSet().AddSteering(s.Sae, iv, prompt.Length));
        var clean = m.Forward(all);
        for (int j = 0; j < run.Generated.Length; j++)
        {
            int row = prompt.Length - 1 + j; // the position that predicted generated token j
            var p = LogSoftmax(steered.Row(row));
            var q = LogSoftmax(clean.Row(row));
            double kl = 0;
            for (int v = 0; v < p.Length; v++) kl += Math.Exp(p[v]) * (p[v] - q[v]);
            Assert.Equal(kl, effects.Kl[j], 4);
            foreach (var t in effects.TopTokens) Assert.Equal(steered[row, t.Token] - clean[row, t.Token], t.Change[j], 4);
        }
        Assert.True(effects.Kl[0] > 1e-4, "the prompt's last position is steered: the first new token's distribution moves");

        // The promoted tokens are the logit lens of the summed direction, highest first.
        var direction = SteeringHooks.Direction(s.Sae.Sae, iv.Features, normalize: false);
        var scores = Enumerable.Range(0, m.Config.VocabSize)
            .Select(v => Enumerable.Range(0, 64).Sum(k => (double)m.Weights.Unembed[v, k] * direction[k])).ToArray();
        var expected = Enumerable.Range(0, scores.Length).OrderByDescending(v => scores[v]).Take(5).ToArray();
        Assert.Equal(expected, effects.TopTokens.Select(t => t.Token));
        Assert.Equal(scores[expected[0]], effects.TopTokens[0].DirectionLogit, 4);
    }

    [SharedFact(StoriesWeights)]
    public void AHookInsideAttentionHasNoOutputTokens()
    {
        var m = LoadStories();
        Assert.Empty(SteeringEffects.TopOutputTokens(m, new float[8], 5)); // a d_head-wide direction is not in the residual basis
        Assert.Equal(3, SteeringEffects.TopOutputTokens(m, new float[64], 3).Length);
    }
}
