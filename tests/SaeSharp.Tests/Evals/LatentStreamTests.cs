using SaeSharp.Data;
using SaeSharp.Evals;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Evals;

/// <summary>The model-plus-SAEs stream: latent codes per position, ragged batches, kept positions.</summary>
public class LatentStreamTests
{
    [SharedFact(StoriesWeights)]
    public void CodesPerPositionMatchTheSaeOnExtractedActivations()
    {
        var m = LoadStories();
        var a = Hooked(m, Random("topk", 64, Metadata("blocks.1.hook_resid_post")), "a");
        var z = Hooked(m, Random("jumprelu", 8, Metadata("blocks.3.attn.hook_z", head: 5), seed: 2), "z");
        var seqs = new[] { new[] { 1, 40, 41, 42, 2, 43 }, new[] { 1, 50, 51 } }; // ragged: the second padded to 6
        var stream = new LatentStream(m, [a, z], [1, 2]);
        var batch = stream.Run(seqs);
        Assert.Equal(6, batch.SeqLen);
        Assert.Equal([false, true, true, true, false, true, false, true, true, false, false, false], batch.Keep);
        Assert.Equal((1, 2), batch.PositionOf(8));
        Assert.Equal(8, batch.Row(1, 2));
        Assert.Null(batch.Logits);
        // Every real position's codes equal the SAE run on that sequence's activations alone.
        for (int s = 0; s < seqs.Length; s++)
        {
            var (rows, _) = ActivationStore.Extract(m, "blocks.1.hook_resid_post", [seqs[s]]);
            var own = a.Sae.Forward(rows).DenseFeatures();
            var streamed = batch.Saes[0].Forward.DenseFeatures();
            for (int p = 0; p < seqs[s].Length; p++)
                for (int j = 0; j < own.Cols; j++) Assert.Equal(own[p, j], streamed[batch.Row(s, p), j], 1e-5f);
            var (heads, _) = ActivationStore.Extract(m, "blocks.3.attn.hook_z", [seqs[s]], select: new HookSelection(HeadIndex: 5));
            for (int p = 0; p < seqs[s].Length; p++)
                for (int j = 0; j < 8; j++) Assert.Equal(heads[p, j], batch.Saes[1].Input[batch.Row(s, p), j], 1e-5f); // batched GEMMs round differently
        }
    }

    [SharedFact(StoriesWeights)]
    public void StreamBatchesLazilyAndAsksForLogitsOnlyWhenTold()
    {
        var m = LoadStories();
        var stream = new LatentStream(m, [Hooked(m, Random("standard", 64, Metadata("blocks.0.hook_resid_post")))]);
        var seqs = Sequences(m, 5, 8, bos: 1);
        var batches = stream.Stream(seqs, 2, withLogits: true).ToList();
        Assert.Equal([2, 2, 1], batches.Select(b => b.Sequences.Count));
        Assert.Equal([1, 8, m.Config.VocabSize], batches[2].Logits!.Shape.ToArray());
        Assert.All(batches, b => Assert.All(b.Keep, Assert.True)); // nothing excluded without exclude tokens
        Assert.Throws<ArgumentOutOfRangeException>(() => stream.Stream(seqs, 0).ToList());
        Assert.Throws<ArgumentException>(() => new LatentStream(m, []));
    }
}
