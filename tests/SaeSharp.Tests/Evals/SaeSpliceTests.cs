using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Evals;

/// <summary>Splice hooks on real models: every architecture, transcoders, hook_z with and without a head index, masks and ablations.</summary>
public class SaeSpliceTests
{
    public static TheoryData<string> Architectures => [.. SaeRegistry.Names];

    private static HookedSae ForArchitecture(HookedTransformer m, string architecture)
    {
        bool transcoder = SaeRegistry.Get(architecture).Transcoder;
        var meta = transcoder ? Metadata("blocks.1.ln2.hook_normalized", hookOut: "blocks.1.hook_mlp_out") : Metadata("blocks.1.hook_resid_post");
        return Hooked(m, Random(architecture, 64, meta, dOut: 64), architecture);
    }

    [SharedTheory(StoriesWeights)]
    [MemberData(nameof(Architectures))]
    public void EveryArchitectureSplicesAndItsErrorTermRestoresTheCleanRun(string architecture)
    {
        var m = LoadStories();
        var seqs = Sequences(m, 3, 20, bos: 1);
        var sae = ForArchitecture(m, architecture);
        var clean = m.RunBatch(seqs).Logits!;
        var spliced = m.RunBatch(seqs, hooks: new HookSet().AddSae(sae)).Logits!;
        Assert.True(MaxAbsDiff(clean, spliced) > 1e-2, $"{architecture}: the spliced SAE changed nothing");
        var withError = m.RunBatch(seqs, hooks: new HookSet().AddSae(sae, withError: true)).Logits!;
        Assert.True(MaxAbsDiff(clean, withError) < 1e-4, $"{architecture}: error term left {MaxAbsDiff(clean, withError)}");
        // Scored as the evaluator scores a splice: KL 0 and ce_loss_score 1 to float tolerance.
        var keep = new bool[3 * 20];
        Array.Fill(keep, true);
        var reference = new LogitComparison(clean, seqs, keep, Compute.All);
        var (ce, kl) = reference.Compare(withError);
        var (ceAblation, _) = reference.Compare(m.RunBatch(seqs, hooks: new HookSet().AddZeroAblation(sae.Site)).Logits!);
        Assert.True(Math.Abs(kl.Mean) < 1e-6, $"{architecture}: KL {kl.Mean}");
        double score = (ceAblation.Mean - ce.Mean) / (ceAblation.Mean - reference.CleanCrossEntropy.Mean);
        Assert.True(Math.Abs(score - 1) < 1e-4, $"{architecture}: ce_loss_score {score}");
        // The stream's forward on the clean activations, written back, is the same splice.
        var batch = new LatentStream(m, [sae]).Run(seqs);
        var replaced = m.RunBatch(seqs, hooks: new HookSet().AddReplacement(sae.Site, batch.Saes[0].Forward.Output)).Logits!;
        Assert.Equal(spliced.ToArray(), replaced.ToArray());
    }

    [SharedFact(StoriesWeights)]
    public void TheMaskKeepsExcludedPositionsClean()
    {
        var m = LoadStories();
        var seqs = Sequences(m, 2, 6, bos: 1);
        var sae = Hooked(m, Random("topk", 64, Metadata("blocks.2.hook_resid_post")));
        const string hook = "blocks.2.hook_resid_post";
        var clean = m.RunBatch(seqs, [hook]).Cache[hook];
        bool[] mask = [false, true, true, false, true, true, false, false, true, true, true, true];
        var after = m.RunBatch(seqs, [hook], hooks: new HookSet().AddSae(sae, positions: mask)).Cache[hook];
        var output = sae.Sae.Forward(sae.Site.GatherInput(clean)).Output;
        for (int r = 0; r < mask.Length; r++)
            Assert.Equal(mask[r] ? output.Row(r).ToArray() : clean.Reshape(12, 64).Row(r).ToArray(), after.Reshape(12, 64).Row(r).ToArray());
    }

    [SharedFact(StoriesWeights)]
    public void HookZWithAHeadIndexChangesOnlyThatHead()
    {
        var m = LoadStories(); // 8 heads of 8 at hook_z
        var seqs = Sequences(m, 2, 7, bos: 1);
        const string hook = "blocks.1.attn.hook_z";
        var clean = m.RunBatch(seqs, [hook]).Cache[hook];
        var sae = Hooked(m, Random("standard", 8, Metadata(hook, head: 3)));
        var after = m.RunBatch(seqs, [hook], hooks: new HookSet().AddSae(sae)).Cache[hook];
        var expected = clean.Clone();
        sae.Site.ScatterOutput(expected, sae.Sae.Forward(sae.Site.GatherInput(clean)).Output);
        Assert.Equal(expected.ToArray(), after.ToArray());
        var heads = clean.Reshape(-1, 8, 8);
        var changed = after.Reshape(-1, 8, 8);
        for (int p = 0; p < 14; p++)
            for (int h = 0; h < 8; h++)
                if (h != 3) Assert.Equal(heads.Span.Slice((p * 8 + h) * 8, 8).ToArray(), changed.Span.Slice((p * 8 + h) * 8, 8).ToArray());
        // All heads flattened (SAELens hook_z reshaping): an exact SAE leaves the logits unchanged.
        var identity = Hooked(m, Identity(64, Metadata(hook)));
        var logits = m.RunBatch(seqs, hooks: new HookSet().AddSae(identity)).Logits!;
        Assert.True(MaxAbsDiff(m.RunBatch(seqs).Logits!, logits) < 1e-5);
    }

    [SharedFact(StoriesWeights)]
    public void ZeroAndMeanAblationFillTheSelectedPositions()
    {
        var m = LoadStories();
        var seqs = Sequences(m, 1, 5, bos: 1);
        const string hook = "blocks.0.attn.hook_z";
        var site = SaeSite.Create(m, hook, 2, hook, 2, 8, 8, "test");
        bool[] mask = [false, true, true, true, true];
        var zero = m.RunBatch(seqs, [hook], hooks: new HookSet().AddZeroAblation(site, mask)).Cache[hook];
        var mean = Enumerable.Range(1, 8).Select(i => (float)i).ToArray();
        var meaned = m.RunBatch(seqs, [hook], hooks: new HookSet().AddMeanAblation(site, mean, mask)).Cache[hook];
        var clean = m.RunBatch(seqs, [hook]).Cache[hook];
        var z = site.GatherOutput(zero); var mu = site.GatherOutput(meaned); var c = site.GatherOutput(clean);
        Assert.Equal(c.Row(0).ToArray(), z.Row(0).ToArray());
        for (int p = 1; p < 5; p++)
        {
            Assert.All(z.Row(p).ToArray(), v => Assert.Equal(0f, v));
            Assert.Equal(mean, mu.Row(p).ToArray());
        }
        Assert.Throws<ArgumentException>(() => new HookSet().AddMeanAblation(site, new float[3]));
    }

    [Fact]
    public void ActivationMeanOfTheKeptRows()
    {
        var mean = new ActivationMean(2);
        mean.Add(Tensor.FromArray([1f, 2, 100, 100, 3, 6], 3, 2), [true, false, true]);
        mean.Add(Tensor.FromArray([5f, 1], 1, 2));
        Assert.Equal(3, mean.Count);
        Assert.Equal([3f, 3], mean.Mean());
        Assert.Throws<InvalidOperationException>(() => new ActivationMean(2).Mean());
    }
}
