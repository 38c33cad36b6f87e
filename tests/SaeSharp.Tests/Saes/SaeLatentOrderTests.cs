using System.Text.Json.Nodes;
using SaeSharp.IO;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Saes;

public class SaeLatentOrderTests
{
    /// <summary>
    /// Every architecture's per-latent tensors follow the order, so the reordered SAE's latents are the old ones
    /// permuted and its reconstruction is unchanged; d_in = d_sae (W_enc square, b_dec as long as b_enc) is decided by
    /// SAELens's layout. sparsity.safetensors follows too.
    /// </summary>
    [Theory]
    [InlineData("standard", 16, 24)]
    [InlineData("topk", 16, 24)]
    [InlineData("jumprelu", 16, 24)]
    [InlineData("gated", 16, 24)]
    [InlineData("gated", 24, 24)]
    [InlineData("standard", 24, 24)]
    [InlineData("skip_transcoder", 24, 24)]
    [InlineData("transcoder", 16, 24)]
    public void PermutesEveryPerLatentTensorAndKeepsTheReconstruction(string architecture, int dIn, int dSae)
    {
        using var dir = new TempDir();
        var sae = Random(architecture, dIn, new JsonObject { ["hook_name"] = "h" }, dOut: dIn, seed: 3, dSae: dSae);
        var density = Enumerable.Range(0, dSae).Select(i => -i / 10f).ToArray();
        string source = dir.File("src"), target = dir.File("dst");
        SaeFiles.Save(sae, source, density);
        var order = new Rng(9).Permutation(dSae);
        SaeLatentOrder.Write(source, order, target, new JsonObject { ["reference"] = "ref" });
        var moved = SaeFiles.Load(target, Compute.Single);
        foreach (var (name, t) in sae.Params)
        {
            var m = moved.Params[name];
            int axis = name == "W_enc" ? 1 : name == "W_dec" || t.Rank == 1 && t.Length == dSae && name != "b_dec" ? 0 : -1;
            for (int i = 0; i < t.Length; i++)
            {
                int expected = i;
                if (axis == 0) expected = order[i / (t.Length / dSae)] * (t.Length / dSae) + i % (t.Length / dSae);
                if (axis == 1) expected = i / dSae * dSae + order[i % dSae];
                Assert.Equal(t[expected], m[i]);
            }
        }
        Assert.Equal(order.Select(i => density[i]), SaeFiles.LoadSparsity(target, dSae)!);
        var x = new Tensor(5, dIn);
        new Rng(4).FillNormal(x.Span);
        var target2 = sae.Config.IsTranscoder ? x : null;
        var before = sae.Forward(x, target2, null);
        var after = moved.Forward(x, target2, null);
        var f0 = before.DenseFeatures();
        var f1 = after.DenseFeatures();
        for (int r = 0; r < 5; r++)
            for (int p = 0; p < dSae; p++) Assert.Equal(f0[r, order[p]], f1[r, p], 5);
        Assert.True(MaxAbsDiff(before.Output, after.Output) < 1e-4);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(target, SaeFiles.ConfigFile)))!;
        Assert.Equal("ref", (string?)cfg["metadata"]!["latent_order"]!["reference"]);
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(target, SaeLatentOrder.OrderFile)))!["order"]!.AsArray().Select(n => (int)n!);
        Assert.Equal(order, saved);
    }

    [Fact]
    public void KeepsTheStoredDtypeAndRefusesWhatIsNotAPermutation()
    {
        using var dir = new TempDir();
        var sae = Random("standard", 8, new JsonObject(), dSae: 12);
        string source = dir.File("src");
        SaeFiles.Save(sae, source);
        // Rewrite the weights as bf16, as SAELens checkpoints sometimes are.
        string weights = Path.Combine(source, SaeFiles.WeightsFile);
        var w = new SafetensorsWriter();
        foreach (var (name, t) in sae.Params) w.Add(name, t, DType.BF16);
        w.Write(weights);
        var order = Enumerable.Range(0, 12).Reverse().ToArray();
        SaeLatentOrder.Write(source, order, dir.File("dst"));
        using (var f = SafetensorsFile.Open(Path.Combine(dir.File("dst"), SaeFiles.WeightsFile)))
        {
            Assert.Equal(DType.BF16, f.Entry("W_dec").DType);
            using var g = SafetensorsFile.Open(weights);
            Assert.Equal(g.ReadFloat32("b_enc").ToArray().Reverse(), f.ReadFloat32("b_enc").ToArray());
        }
        Assert.Throws<ArgumentException>(() => SaeLatentOrder.Write(source, [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], dir.File("bad")));
        Assert.Throws<ArgumentException>(() => SaeLatentOrder.Write(source, [0, 1], dir.File("bad")));
        Assert.Throws<ArgumentException>(() => SaeLatentOrder.Write(source, order, source));
        Assert.Throws<InvalidDataException>(() => SaeLatentOrder.LatentAxis("extra", [12, 12], new SaeConfig { Architecture = "standard", DIn = 12, DSae = 12 }, "x"));
        Assert.Equal(0, SaeLatentOrder.LatentAxis("extra", [12, 5], new SaeConfig { Architecture = "standard", DIn = 8, DSae = 12 }, "x"));
    }
}
