using SaeSharp.Evals;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Evals;

/// <summary>Where an SAE reads and writes in a model: layouts, head slices, and the errors for SAEs that do not fit.</summary>
public class SaeSiteTests
{
    [SharedFact(Gpt2Weights)]
    public void ResidualAndAttentionLayouts()
    {
        var m = LoadGpt2(); // d 64, 4 heads of 16
        var resid = SaeSite.Create(m, "blocks.1.hook_resid_post", null, "blocks.1.hook_resid_post", null, 64, 64, "test");
        Assert.Equal((64, 0, 64), (resid.InputStride, resid.InputOffset, resid.InputWidth));
        Assert.False(resid.IsCrossHook);
        var z = SaeSite.Create(m, "blocks.0.attn.hook_z", null, "blocks.0.attn.hook_z", null, 64, 64, "test"); // heads flattened
        Assert.Equal((64, 0, 64), (z.InputStride, z.InputOffset, z.InputWidth));
        var head = SaeSite.Create(m, "blocks.0.attn.hook_z", 2, "blocks.0.attn.hook_z", 2, 16, 16, "test");
        Assert.Equal((64, 32, 16), (head.OutputStride, head.OutputOffset, head.OutputWidth));
        var tc = SaeSite.Create(m, "blocks.0.ln2.hook_normalized", null, "blocks.0.hook_mlp_out", null, 64, 64, "test");
        Assert.True(tc.IsCrossHook);
    }

    [SharedFact(Gpt2Weights)]
    public void GatherAndScatterTouchOnlyTheHeadAndTheSelectedPositions()
    {
        var m = LoadGpt2();
        var site = SaeSite.Create(m, "blocks.0.attn.hook_z", 1, "blocks.0.attn.hook_z", 1, 16, 16, "test");
        var view = new Tensor(2, 3, 4, 16); // [batch, pos, head, d_head]
        for (int i = 0; i < view.Length; i++) view[i] = i;
        var rows = site.GatherInput(view);
        Assert.Equal([6, 16], rows.Shape.ToArray());
        Assert.Equal(1 * 16f, rows[0, 0]);                    // position 0, head 1
        Assert.Equal(5 * 64 + 16 + 15f, rows[5, 15]);         // position 5, head 1, last entry
        var before = view.Clone();
        site.ScatterOutput(view, Tensor.Filled(-1, 6, 16), [true, false, false, false, false, true]);
        for (int i = 0; i < view.Length; i++)
        {
            int pos = i / 64, h = i % 64 / 16;
            bool written = h == 1 && (pos == 0 || pos == 5);
            Assert.Equal(written ? -1 : before[i], view[i]);
        }
        Assert.Throws<ArgumentException>(() => site.ScatterOutput(view, new Tensor(6, 16), [true]));
        Assert.Throws<ArgumentException>(() => site.ScatterOutput(view, new Tensor(5, 16)));
    }

    [SharedFact(StoriesWeights)]
    public void SaesThatDoNotFitTheModelGetErrorsNamingThem()
    {
        var m = LoadStories();
        string Err(Action a) => Assert.ThrowsAny<Exception>(a).Message;
        var wrongWidth = Identity(32, Metadata("blocks.2.hook_resid_post"));
        Assert.Contains("d_in 32 does not fit hook 'blocks.2.hook_resid_post'", Err(() => SaeSite.For(m, wrongWidth.Config, "sae/cfg.json")));
        Assert.StartsWith("sae/cfg.json", Err(() => SaeSite.For(m, wrongWidth.Config, "sae/cfg.json")));
        var missing = Identity(64, Metadata("blocks.9.hook_resid_post"));
        Assert.Contains("'blocks.9.hook_resid_post' is not a hook point", Err(() => SaeSite.For(m, missing.Config, "sae/cfg.json")));
        var noHook = Identity(64, []);
        Assert.Contains("no hook_name", Err(() => SaeSite.For(m, noHook.Config, "sae/cfg.json")));
        Assert.Equal("blocks.1.hook_resid_post", SaeSite.For(m, noHook.Config, "x", fallbackHook: "blocks.1.hook_resid_post").InputHook);
        Assert.Contains("no head dimension", Err(() => SaeSite.Create(m, "blocks.1.hook_resid_post", 0, "blocks.1.hook_resid_post", 0, 8, 8, "x")));
        Assert.Contains("out of range for the 8 heads", Err(() => SaeSite.Create(m, "blocks.1.attn.hook_z", 8, "blocks.1.attn.hook_z", 8, 8, 8, "x")));
        Assert.Contains("comes after output hook", Err(() => SaeSite.Create(m, "blocks.1.hook_mlp_out", null, "blocks.1.ln2.hook_normalized", null, 64, 64, "x")));
        Assert.Contains("several hooks", Err(() => SaeSite.Create(m, "blocks.1.hook_mlp_out,blocks.2.hook_mlp_out", null, "blocks.1.hook_mlp_out", null, 64, 64, "x")));
        var tc = Random("transcoder", 64, Metadata("blocks.1.ln2.hook_normalized"), dOut: 64);
        Assert.Contains("needs metadata.hook_name_out", Err(() => SaeSite.For(m, tc.Config, "tc/cfg.json")));
    }
}
