using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>
/// SAELens "matryoshka_batchtopk": a batchtopk SAE (same selection, threshold, AuxK and jumprelu export) whose
/// training forward adds, for every proper prefix width w of matryoshka_widths, the loss
/// inner_mse_loss_{w} = mean_b Σ_d (b_dec + Σ_{j &lt; w} f_j·W_dec[j] − x)², the reconstruction from the first w
/// latents only (the full width is mse_loss). The inner losses are computed only in training forwards (with loss
/// options), as SAELens. With use_matryoshka_aux_loss (SAELens 6.x) AuxK is taken per level instead of once: the dead
/// latents of each level [w_prev, w) reconstruct the residual of that level's own prefix reconstruction (latents below
/// w), each term scaled by min(n_dead in the level / k_aux, 1), their sum being auxiliary_reconstruction_loss.
/// </summary>
public sealed class MatryoshkaBatchTopKSae : TopKSae
{
    public static SaeArchitecture Architecture { get; } = BatchTopKArchitecture with
    {
        Name = "matryoshka_batchtopk", Create = (c, compute) => new MatryoshkaBatchTopKSae(c, compute),
        CfgKeys = [.. BatchTopKArchitecture.CfgKeys, "matryoshka_widths"],
    };

    public MatryoshkaBatchTopKSae(SaeConfig config, Compute compute) : base(config, compute)
    {
        if (config.Architecture != Architecture.Name)
            throw new ArgumentException($"MatryoshkaBatchTopKSae cannot be a '{config.Architecture}' SAE");
    }

    /// <summary>The prefix widths (the last is d_sae).</summary>
    public IReadOnlyList<int> Widths => Config.MatryoshkaWidths!;

    /// <summary>The loss-term name of the prefix of width <paramref name="width"/> (SAELens's name).</summary>
    public static string InnerLossName(int width) => $"inner_mse_loss_{width}";

    private sealed record Level(int Width, float[] Values, Tensor Grad);

    private sealed record MatryoshkaState(float[] DecodeValues, Tensor MseGrad, IReadOnlyList<AuxState> Aux, Level[] Levels)
        : State(DecodeValues, MseGrad, Aux);

    protected override bool AuxKPerLevel(SaeLossOptions loss) => loss.UseMatryoshkaAuxLoss;

    protected override State ExtendState(State state, SparseCodes codes, Tensor pre, Tensor output, Tensor? target, ActivationNorm? norm,
        SaeLossOptions? loss, Dictionary<string, double> losses)
    {
        if (loss is null || target is null) return state;
        int rows = codes.Rows;
        var levels = new Level[Widths.Count - 1];
        var prefixOutputs = new Tensor[Widths.Count];
        prefixOutputs[^1] = output;
        for (int l = 0; l < levels.Length; l++)
        {
            int w = Widths[l];
            // The same sparse codes with every latent at or past the width zeroed.
            var values = codes.NewValues();
            for (int e = 0; e < values.Length; e++) if (codes.Index[e] < w) values[e] = state.DecodeValues[e];
            var inner = Tensor.Uninitialized(rows, DOut);
            SparseKernels.Decode(codes, WDec, inner, Compute, BDec.Span, values);
            (losses[InnerLossName(w)], var grad) = ReconstructionLoss(inner, target, norm);
            levels[l] = new Level(w, values, grad);
            prefixOutputs[l] = inner;
        }
        var aux = state.Aux;
        if (loss.UseMatryoshkaAuxLoss && loss.DeadMask is { } dead)
        {
            var perLevel = new List<AuxState>();
            double total = 0;
            for (int l = 0; l < Widths.Count; l++)
            {
                var (a, auxLoss) = AuxK(target, prefixOutputs[l], pre, dead, loss, norm, l == 0 ? 0 : Widths[l - 1], Widths[l]);
                if (a is null) continue;
                perLevel.Add(a);
                total += auxLoss;
            }
            if (perLevel.Count > 0) losses["auxiliary_reconstruction_loss"] = total;
            aux = perLevel;
        }
        return new MatryoshkaState(state.DecodeValues, state.MseGrad, aux, levels);
    }

    public override void Backward(SaeForward f, SaeParams grads, Func<string, bool>? include = null)
    {
        include ??= _ => true;
        base.Backward(f, grads, include);
        if (f.State is not MatryoshkaState st) return;
        foreach (var lv in st.Levels)
            if (include(InnerLossName(lv.Width))) ReconstructionBackward(f, lv.Values, lv.Grad, grads, lv.Width);
    }
}
