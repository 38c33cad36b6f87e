using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Models;

/// <summary>Runs resumed from a residual stream (TransformerLens start_at_layer) equal the full run.</summary>
public class ResidualStartTests
{
    private const string Dir = "models/stories260K";

    [SharedFact(Dir + "/model.safetensors")]
    public void ResumingFromTheCleanResidualGivesTheFullRunsLogits()
    {
        var m = HookedTransformer.Load(SharedData.Path(Dir), Compute.All);
        var seqs = new[] { new[] { 1, 300, 301, 302, 303 }, new[] { 1, 400, 401 } };
        var hooks = new HookSet().Edit("blocks.3.hook_mlp_out", t => t.Span.Clear()); // a patch inside block 3
        var full = m.RunBatch(seqs, ["blocks.3.hook_resid_pre", "blocks.4.hook_resid_post"], hooks: hooks);
        var clean = m.RunBatch(seqs, ["blocks.3.hook_resid_pre", "blocks.4.hook_resid_post"]);
        var resumed = m.RunBatch(seqs, ["blocks.4.hook_resid_post"], hooks: hooks, start: new ResidualStart(3, clean.Cache["blocks.3.hook_resid_pre"]));
        Assert.Equal(full.Logits!.ToArray(), resumed.Logits!.ToArray());
        Assert.Equal(full.Cache["blocks.4.hook_resid_post"].ToArray(), resumed.Cache["blocks.4.hook_resid_post"].ToArray());
        // From after the last block only the final norm and unembedding run.
        var end = m.RunBatch(seqs, start: new ResidualStart(5, clean.Cache["blocks.4.hook_resid_post"]));
        Assert.Equal(clean.Logits!.ToArray(), end.Logits!.ToArray());
        Assert.Equal(3, m.BlockOf("blocks.3.attn.hook_z"));
        Assert.Equal(-1, m.BlockOf("hook_embed"));
        Assert.Equal(5, m.BlockOf("ln_final.hook_normalized"));
    }

    [SharedFact(Dir + "/model.safetensors")]
    public void HooksBeforeTheStartAndMisshapenResidualsAreRefused()
    {
        var m = HookedTransformer.Load(SharedData.Path(Dir), Compute.All);
        var seqs = new[] { new[] { 1, 300, 301 } };
        var residual = new Tensor(1, 3, 64);
        var early = new HookSet().Edit("blocks.1.hook_resid_post", _ => { });
        Assert.Contains("lies before start layer 2", Assert.Throws<ArgumentException>(() => m.RunBatch(seqs, hooks: early, start: new ResidualStart(2, residual))).Message);
        Assert.Contains("lies before start layer 2", Assert.Throws<ArgumentException>(() => m.RunBatch(seqs, ["hook_embed"], start: new ResidualStart(2, residual))).Message);
        Assert.Throws<ArgumentException>(() => m.RunBatch(seqs, start: new ResidualStart(2, new Tensor(1, 4, 64))));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.RunBatch(seqs, start: new ResidualStart(6, residual)));
    }
}
