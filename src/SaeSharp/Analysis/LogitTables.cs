using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Analysis;

/// <summary>One latent's logit table: the tokens its direction raises and lowers most, and the histogram of all its effects.</summary>
public sealed record LogitTable(IReadOnlyList<(int Token, float Value)> Top, IReadOnlyList<(int Token, float Value)> Bottom, Histogram Histogram);

/// <summary>
/// The direct effect of each latent's decoder direction on the logits, as SAEDashboard computes it: the decoder row
/// mapped into the residual stream (itself for residual-stream and block-output hooks, through W_out for
/// <c>mlp.hook_post</c>, through W_O for <c>attn.hook_z</c>), times the final norm's gain (TransformerLens folds it into
/// W_U), times the unembedding: <c>effect[j, v] = Σ_d dir[j, d] · g[d] · W_U[v, d]</c>. TransformerLens also centres
/// W_U over the vocabulary, which shifts a latent's effects by one constant and changes neither table; that is not done.
/// </summary>
public static class LogitTables
{
    private const int Block = 256;

    /// <summary>
    /// The residual-stream direction of every latent's decoder row, <c>[d_sae, d_model]</c>, with whether the final
    /// norm's gain applies after it; null with the reason when the SAE's output hook is not linear in the residual stream.
    /// </summary>
    public static (Tensor? Directions, bool FoldGain, string Note) ResidualDirections(HookedTransformer model, HookedSae sae, Compute compute)
    {
        var site = sae.Site;
        var wDec = sae.Sae.WDec;
        string hook = site.OutputHook;
        int d = model.Config.DModel;
        int block = model.BlockOf(hook);
        string name = block >= 0 && block < model.Config.NLayers ? hook[(hook.IndexOf('.', "blocks.".Length) + 1)..] : hook;
        // The SAE's part of the output hook, widened to the hook's whole width (zeros for other heads).
        Tensor Widened()
        {
            if (site.OutputWidth == site.OutputStride) return wDec;
            var wide = new Tensor(wDec.Rows, site.OutputStride);
            for (int j = 0; j < wDec.Rows; j++) wDec.Row(j).CopyTo(wide.Row(j).Slice(site.OutputOffset, site.OutputWidth));
            return wide;
        }
        switch (name)
        {
            case "hook_embed" or "hook_pos_embed" or "hook_resid_pre" or "hook_resid_mid" or "hook_resid_post" or "hook_attn_out" or "hook_mlp_out"
                or "ln_final.hook_normalized" when site.OutputStride == d:
                return (wDec, true, $"decoder rows at {hook} (residual stream) × final norm gain × W_U");
            case "ln_final.output" when site.OutputStride == d:
                return (wDec, false, $"decoder rows at {hook} (after the final norm) × W_U");
            case "mlp.hook_post":
                return (Through(Widened(), model.Weights.Blocks[block].Out, compute), true, $"decoder rows at {hook} × W_out × final norm gain × W_U");
            case "attn.hook_z":
                return (Through(Widened(), model.Weights.Blocks[block].O, compute), true, $"decoder rows at {hook} × W_O × final norm gain × W_U");
            default:
                return (null, false, $"no logit tables: {hook} does not write linearly into the residual stream");
        }
    }

    /// <summary>x·W for a linear layer, without its bias.</summary>
    private static Tensor Through(Tensor x, Linear layer, Compute compute)
    {
        if (x.Cols != layer.In) throw new ArgumentException($"decoder rows have {x.Cols} columns, the layer takes {layer.In}");
        var y = new Tensor(x.Rows, layer.Out);
        Gemm.Multiply(Trans.No, layer.OutIn ? Trans.Yes : Trans.No, x.Rows, layer.Out, layer.In, 1f, x.Span, x.Cols,
            layer.Weight.Span, layer.Weight.Cols, 0f, y.Span, layer.Out, compute);
        return y;
    }

    /// <summary>
    /// The logit table of every latent: <paramref name="rows"/> largest and smallest effects (ties to the lower token
    /// id) and a <paramref name="bins"/>-bin histogram over the vocabulary, computed in blocks of latents so the whole
    /// <c>[d_sae, vocab]</c> matrix never exists.
    /// </summary>
    public static LogitTable[] Compute(Tensor directions, HookedTransformer model, bool foldGain, int rows, int bins, Compute compute)
    {
        var w = model.Weights;
        int d = model.Config.DModel, vocab = model.Config.VocabSize, n = directions.Rows;
        if (directions.Cols != d) throw new ArgumentException($"directions have {directions.Cols} columns, d_model is {d}");
        var scaled = directions.Clone();
        if (foldGain)
            for (int j = 0; j < n; j++) System.Numerics.Tensors.TensorPrimitives.Multiply(scaled.Row(j), w.LnFinal.Gain.Span, scaled.Row(j));
        var tables = new LogitTable[n];
        var logits = Tensor.Uninitialized(Math.Min(Block, n), vocab);
        int keep = Math.Min(rows, vocab);
        for (int start = 0; start < n; start += Block)
        {
            int count = Math.Min(Block, n - start);
            var l = logits.RowSlice(0, count);
            Gemm.Multiply(Trans.No, Trans.Yes, count, vocab, d, 1f, scaled.Span[(start * d)..], d, w.Unembed.Span, d, 0f, l.Span, vocab, compute);
            compute.ForRange(count, 8, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    var row = l.Row(r);
                    tables[start + r] = new LogitTable(Extremes(row, keep, largest: true), Extremes(row, keep, largest: false), Histogram.Of(row, bins));
                }
            });
        }
        return tables;
    }

    /// <summary>The <paramref name="k"/> largest (or smallest) entries of a row, best first, ties to the lower index.</summary>
    public static (int Token, float Value)[] Extremes(ReadOnlySpan<float> row, int k, bool largest)
    {
        var best = new (int Token, float Value)[k];
        int filled = 0;
        for (int i = 0; i < row.Length; i++)
        {
            float v = largest ? row[i] : -row[i];
            if (filled == k && !(v > (largest ? best[k - 1].Value : -best[k - 1].Value))) continue;
            int at = filled < k ? filled++ : k - 1;
            while (at > 0 && (largest ? best[at - 1].Value : -best[at - 1].Value) < v) { best[at] = best[at - 1]; at--; }
            best[at] = (i, row[i]);
        }
        return best[..filled];
    }
}
