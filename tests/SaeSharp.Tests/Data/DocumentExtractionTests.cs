using SaeSharp.Tensors;
using SaeSharp.Data;
using Xunit;

namespace SaeSharp.Tests.Data;

public class DocumentExtractionTests
{
    [Fact]
    public void LastRealIndexSkipsPadding()
    {
        Assert.Equal(2, DocumentExtraction.LastRealIndex(new[] { 5, 6, 7, 0, 0 }, 0));
        Assert.Equal(4, DocumentExtraction.LastRealIndex(new[] { 5, 6, 7, 0, 8 }, 0));
        Assert.Equal(-1, DocumentExtraction.LastRealIndex(new[] { 0, 0 }, 0));
        Assert.Equal(1, DocumentExtraction.LastRealIndex(new[] { 0, 0 }, null));
    }

    [SharedFact(ActivationStoreTests.Model)]
    public void PicksLastNonPadPositionFromEveryHookAndRoundTrips()
    {
        var model = ActivationStoreTests.LoadModel();
        string[] hooks = { "blocks.0.hook_resid_post", "blocks.1.hook_resid_post" };
        var docs = new List<int[]> { new[] { 1, 40, 50, 0, 0 }, new[] { 1, 60, 70, 80, 90 }, new[] { 1, 33, 0, 0, 0 } };
        var texts = new[] { new string('a', 300), "short", "x" };
        var (acts, meta) = DocumentExtraction.Extract(model, hooks, docs, texts, padToken: 0, batchSize: 2);
        int d = model.Config.DModel;
        Assert.Equal(new[] { 3, 2 * d }, new[] { acts.Rows, acts.Cols });
        int[] expectedPos = { 2, 4, 1 };
        for (int i = 0; i < docs.Count; i++)
        {
            Assert.Equal(expectedPos[i], meta.Samples[i].Position);
            var real = docs[i][..(expectedPos[i] + 1)];
            var c = model.RunWithCache(real, hooks, returnLogits: false).Cache;
            for (int h = 0; h < 2; h++)
            {
                var want = c[hooks[h]].Row(expectedPos[i]).ToArray();
                var got = acts.Row(i).Slice(h * d, d).ToArray();
                for (int j = 0; j < d; j++) Assert.Equal(want[j], got[j], 4);
            }
        }
        Assert.Equal(200, meta.Samples[0].Text!.Length);
        var dir = Path.Combine(Path.GetTempPath(), "saesharp-extract-" + Guid.NewGuid().ToString("N"));
        DocumentExtraction.Save(dir, acts, meta);
        var (a2, m2) = DocumentExtraction.Load(dir);
        Assert.Equal(acts.ToArray(), a2.ToArray());
        Assert.Equal(docs[1], m2.Samples[1].TokenIds);
        Assert.Equal(hooks, m2.Hooks);
    }

    [Fact]
    public void InterruptedExtractionSaysNothingWasWritten()
    {
        var modelDir = Directory.CreateTempSubdirectory().FullName;
        SaeSharp.Tests.Models.ModelLoaderTests.WriteTinyLlama(modelDir);
        var model = SaeSharp.Models.HookedTransformer.Load(modelDir, Compute.All);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var e = Assert.Throws<OperationCanceledException>(() =>
            DocumentExtraction.Extract(model, ["blocks.0.hook_resid_post"], [[1, 2, 3], [1, 4]], cancel: cancelled.Token));
        Assert.Contains("0 of 2 documents", e.Message);
        Assert.Contains("nothing was written", e.Message);
        Directory.Delete(modelDir, true);
    }
}
