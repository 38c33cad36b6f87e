using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>
/// SAELens "topk" and "batchtopk". pre = (x − b_dec)·W_enc + b_enc; topk keeps the k largest per row then
/// ReLUs them; batchtopk (training, i.e. with loss options) ReLUs then keeps the k·B largest of the whole batch
/// and tracks an EMA of the smallest kept value, the threshold it uses at inference and exports to jumprelu.
/// With rescale_acts_by_decoder_norm the ranking uses pre·‖W_dec[j]‖ and decode divides it back out.
/// Decode and all weight gradients touch only the selected latents.
/// Losses: mse_loss, and auxiliary_reconstruction_loss (AuxK) when the caller marks dead latents.
/// With activation normalisation the AuxK reconstruction is scaled back to raw scale (no shift: it is a residual).
/// </summary>
public class TopKSae : Sae
{
    public static SaeArchitecture TopKArchitecture { get; } = new()
    {
        Name = "topk", Create = (c, compute) => new TopKSae(c, compute), TopK = true, CfgKeys = ["k", "rescale_acts_by_decoder_norm"],
        TrainingKeys = ["k", "aux_loss_coefficient", "rescale_acts_by_decoder_norm"],
    };

    public static SaeArchitecture BatchTopKArchitecture { get; } = TopKArchitecture with
    {
        Name = "batchtopk", BatchSelection = true, SavedAs = "jumprelu", CfgKeys = [.. TopKArchitecture.CfgKeys, "topk_threshold_lr"],
        TrainingKeys = [.. TopKArchitecture.TrainingKeys, "topk_threshold_lr"],
    };

    public TopKSae(SaeConfig config, Compute compute) : base(config, compute)
    {
        if (!config.Kind.TopK) throw new ArgumentException($"TopKSae cannot be a '{config.Architecture}' SAE");
        Params.Add("W_enc", new Tensor(config.DIn, config.DSae));
        Params.Add("b_enc", new Tensor(config.DSae));
        Params.Add("W_dec", new Tensor(config.DSae, config.DIn));
        Params.Add("b_dec", new Tensor(config.DIn));
    }

    /// <summary>batchtopk or matryoshka_batchtopk: batch-wide selection in training, a threshold at inference.</summary>
    public bool IsBatch => Config.Kind.BatchSelection;

    /// <summary>batchtopk inference threshold (SAELens topk_threshold buffer), updated by training forwards.</summary>
    public double TopKThreshold { get; set; }

    /// <summary>
    /// AuxK runs on sparse codes while at most this share of the dead latents is selected per row (k_aux / n_dead);
    /// above it, against the dead latents' weights gathered compactly: the reconstruction as a sparse decode of the
    /// entries by dead position, the backward on dense [B, n_dead] codes (three GEMMs of B × n_dead × d_in). With one
    /// latent in seven dead (k_aux 256 of 2,341) the dense path is 11% dense and the faster one; with fewer than 256 dead every dead latent is selected in every row. 0 forces dense, 1 sparse.
    /// </summary>
    public double AuxSparseDensity { get; set; } = 0.06;

    /// <summary>
    /// The AuxK selection (k_aux dead latents per row) and its loss gradient; with the dense path also the codes as
    /// [B, n_dead], each entry's column there, and the dead latents' decoder rows.
    /// </summary>
    protected sealed record AuxState(SparseCodes Codes, Tensor Grad, int[] Dead, int[]? Positions, Tensor? DenseCodes, Tensor? DeadWeights);

    /// <summary>What the backward needs: the decoded value of each code entry, the loss gradients of the outputs, and every AuxK term's selection.</summary>
    protected record State(float[] DecodeValues, Tensor MseGrad, IReadOnlyList<AuxState> Aux);

    protected override SaeForward ForwardCore(Tensor input, Tensor x, Tensor? target, ActivationNorm? norm, SaeLossOptions? loss)
    {
        var saeIn = ProcessInput(x);
        float[]? norms = Config.RescaleActsByDecoderNorm ? DecoderNorms(WDec) : null;
        // Row top-k adds b_enc in its own pass over the rows; every other path adds it first.
        bool fuseBias = !IsBatch && norms is null;
        var pre = fuseBias ? Gemm.MatMul(saeIn, WEnc, compute: Compute) : DenseEncode(saeIn, WEnc, Params["b_enc"].Span);
        var ranking = pre;
        if (norms is not null)
        {
            ranking = pre.Clone();
            for (int r = 0; r < ranking.Rows; r++) TensorPrimitives.Multiply(ranking.Row(r), norms, ranking.Row(r));
        }
        SparseCodes codes;
        if (!IsBatch) codes = TopK.Rows(ranking, Config.K, relu: true, Compute, fuseBias ? Params["b_enc"].Span.ToArray() : null);
        else if (loss is not null)
        {
            (codes, float minKept) = TopK.Batch(ranking, checked(Config.K * x.Rows), Compute);
            if (codes.Count > 0) TopKThreshold = (1 - Config.TopKThresholdLr) * TopKThreshold + Config.TopKThresholdLr * minKept;
        }
        else codes = Threshold(ranking, (float)TopKThreshold);

        // The decoded value is the code divided by the decoder norm, i.e. ReLU(pre) itself when rescaling.
        var decodeValues = codes.Value;
        if (norms is not null)
        {
            decodeValues = codes.NewValues();
            for (int r = 0; r < codes.Rows; r++)
                for (int e = codes.RowStart[r]; e < codes.RowStart[r + 1]; e++)
                    decodeValues[e] = codes.Value[e] > 0 ? pre[r, codes.Index[e]] : 0;
        }
        var output = Tensor.Uninitialized(x.Rows, Config.DIn);
        SparseKernels.Decode(codes, WDec, output, Compute, BDec.Span, decodeValues);
        var (mse, mseGrad) = ReconstructionLoss(output, target!, norm);
        var losses = new Dictionary<string, double> { ["mse_loss"] = mse };

        AuxState[] aux = [];
        if (loss?.DeadMask is { } dead)
        {
            if (dead.Length != Config.DSae) throw new ArgumentException($"dead mask has {dead.Length} entries, d_sae is {Config.DSae}");
            if (!AuxKPerLevel(loss))
            {
                var (a, auxLoss) = AuxK(target!, output, pre, dead, loss, norm, 0, Config.DSae);
                if (a is not null) { aux = [a]; losses["auxiliary_reconstruction_loss"] = auxLoss; }
            }
        }
        return new SaeForward
        {
            Input = input, Target = target, Norm = norm, SaeIn = saeIn, Output = output, PreActs = pre, Codes = codes, Options = loss,
            State = ExtendState(new State(decodeValues, mseGrad, aux), codes, pre, output, target, norm, loss, losses),
        }.WithLosses(losses);
    }

    /// <summary>Whether a subclass computes AuxK itself, per group of latents, instead of the one AuxK over every dead latent.</summary>
    protected virtual bool AuxKPerLevel(SaeLossOptions loss) => false;

    /// <summary>A subclass's hook to add loss terms (into <paramref name="losses"/>) and the state their backward needs.</summary>
    protected virtual State ExtendState(State state, SparseCodes codes, Tensor pre, Tensor output, Tensor? target, ActivationNorm? norm,
        SaeLossOptions? loss, Dictionary<string, double> losses) => state;

    // batchtopk at inference: keep pre > threshold (after ReLU), as the exported JumpReLU does.
    private static SparseCodes Threshold(Tensor ranking, float threshold)
    {
        int count = 0;
        foreach (float v in ranking.Span) if (v > threshold && v > 0) count++;
        var codes = new SparseCodes(ranking.Rows, ranking.Cols, count);
        int w = 0;
        for (int r = 0; r < ranking.Rows; r++)
        {
            codes.RowStart[r] = w;
            var row = ranking.Row(r);
            for (int j = 0; j < row.Length; j++)
                if (row[j] > threshold && row[j] > 0) { codes.Index[w] = j; codes.Value[w] = row[j]; w++; }
        }
        codes.RowStart[ranking.Rows] = w;
        return codes;
    }

    /// <summary>
    /// AuxK (SAELens calculate_topk_aux_loss) over the dead latents in [<paramref name="lo"/>, <paramref name="hi"/>):
    /// the top k_aux of their pre-activations per row (no ReLU) decode, without b_dec, the detached residual
    /// x − <paramref name="output"/>; scaled by min(n_dead / k_aux, 1). Null when that range holds no dead latent.
    /// </summary>
    protected (AuxState?, double) AuxK(Tensor x, Tensor output, Tensor pre, bool[] dead, SaeLossOptions loss, ActivationNorm? norm, int lo, int hi)
    {
        int nDead = 0;
        for (int j = lo; j < hi; j++) if (dead[j]) nDead++;
        if (nDead == 0) return (null, 0);
        int kAux = loss.AuxK > 0 ? loss.AuxK : Config.DIn / 2;
        if (kAux < 1) return (null, 0);
        double scale = Math.Min((double)nDead / kAux, 1.0);
        kAux = Math.Min(kAux, nDead);
        var deadIdx = new int[nDead];
        for (int j = lo, n = 0; j < hi; j++) if (dead[j]) deadIdx[n++] = j;
        var codes = SparseCodes.Fixed(x.Rows, Config.DSae, kAux);
        bool dense = kAux > AuxSparseDensity * nDead;
        // Dense path: the same entries numbered by dead position (their indices are the backward's positions), and the
        // selected values also straight into [B, n_dead] codes, row by row on the selecting thread.
        var compact = dense ? SparseCodes.Fixed(x.Rows, nDead, kAux) : null;
        var positions = compact?.Index;
        var denseCodes = dense ? Tensor.Uninitialized(x.Rows, nDead) : null;
        Compute.ForRange(x.Rows, 8, (r0, r1) =>
        {
            var buf = new float[nDead];
            var sel = new int[kAux];
            var keys = new ulong[nDead];
            for (int r = r0; r < r1; r++)
            {
                var row = pre.Row(r);
                for (int n = 0; n < nDead; n++) buf[n] = row[deadIdx[n]];
                var values = codes.Value.AsSpan(r * kAux, kAux);
                TopK.SelectRowByIndex(buf, kAux, values, sel, keys);
                for (int t = 0; t < kAux; t++) codes.Index[r * kAux + t] = deadIdx[sel[t]];
                if (positions is null) continue;
                sel.AsSpan(0, kAux).CopyTo(positions.AsSpan(r * kAux, kAux));
                var denseRow = denseCodes!.Row(r);
                denseRow.Clear();
                for (int t = 0; t < kAux; t++) denseRow[sel[t]] = values[t];
            }
        });
        Tensor recon;
        Tensor? deadWeights = null;
        if (compact is null)
        {
            recon = Tensor.Uninitialized(x.Rows, Config.DIn);
            SparseKernels.Decode(codes, WDec, recon, Compute, default);
        }
        else
        {
            deadWeights = Tensor.Uninitialized(nDead, Config.DIn);
            for (int n = 0; n < nDead; n++) WDec.Row(deadIdx[n]).CopyTo(deadWeights.Row(n));
            // A sparse decode against the compact dead rows (a few MB, cache-resident) beat the dense [B, n_dead] GEMM,
            // 55 vs 83 ms at B 4096, k_aux 256 of 2,341.
            recon = Tensor.Uninitialized(x.Rows, Config.DIn);
            SparseKernels.Decode(compact, deadWeights, recon, Compute, default, codes.Value);
        }
        var residual = x.Clone();
        TensorPrimitives.Subtract(residual.Span, output.Span, residual.Span);
        var (l, g) = ReconstructionLoss(recon, residual, norm, loss.AuxKCoefficient * scale, shift: false);
        return (new AuxState(codes, g, deadIdx, positions, denseCodes, deadWeights), l);
    }

    public override void Backward(SaeForward f, SaeParams grads, Func<string, bool>? include = null)
    {
        include ??= _ => true;
        var st = (State)f.State!;
        if (include("mse_loss")) ReconstructionBackward(f, st.DecodeValues, st.MseGrad, grads);
        if (!include("auxiliary_reconstruction_loss")) return;
        foreach (var aux in st.Aux)
        {
            if (aux.DenseCodes is null)
            {
                // The AuxK reconstruction takes no b_dec.
                var dPre = SparseDecoderBackward(aux.Codes, aux.Codes.Value, aux.Grad, grads["W_dec"], null);
                SparseEncoderBackward(f, aux.Codes, dPre, grads["W_enc"], grads["b_enc"], grads["b_dec"]);
            }
            else DenseAuxBackward(f, aux, grads);
        }
    }

    // AuxK's backward over the dead latents' columns: dW_dec[dead] += Aᵀ·G; the codes' gradient G·W_deadᵀ kept on
    // the selected entries only (the selection passes gradient whatever the value), then the encoder's columns.
    private void DenseAuxBackward(SaeForward f, AuxState aux, SaeParams grads)
    {
        int nDead = aux.Dead.Length, kAux = aux.Codes.Count / Math.Max(1, aux.Codes.Rows);
        var dWDead = Gemm.MatMul(aux.DenseCodes!, aux.Grad, Compute, Trans.Yes, Trans.No);
        var dWDec = grads["W_dec"];
        Compute.ForRange(nDead, 64, (n0, n1) =>
        {
            for (int n = n0; n < n1; n++) TensorPrimitives.Add(dWDec.Row(aux.Dead[n]), dWDead.Row(n), dWDec.Row(aux.Dead[n]));
        });
        // The codes' gradient, then kept on each row's selected entries only (in place, rows in parallel).
        var dPre = Gemm.MatMul(aux.Grad, aux.DeadWeights!, Compute, Trans.No, Trans.Yes);
        var positions = aux.Positions!;
        Compute.ForRange(dPre.Rows, 8, (r0, r1) =>
        {
            var kept = new float[kAux];
            for (int r = r0; r < r1; r++)
            {
                var row = dPre.Row(r);
                var sel = positions.AsSpan(r * kAux, kAux);
                for (int t = 0; t < kAux; t++) kept[t] = row[sel[t]];
                row.Clear();
                for (int t = 0; t < kAux; t++) row[sel[t]] = kept[t];
            }
        });
        var dWEncDead = Gemm.MatMul(f.SaeIn, dPre, Compute, Trans.Yes, Trans.No);
        var dWEnc = grads["W_enc"];
        Compute.ForRange(dWEnc.Rows, 16, (i0, i1) =>
        {
            for (int i = i0; i < i1; i++)
            {
                var dst = dWEnc.Row(i); var src = dWEncDead.Row(i);
                for (int n = 0; n < nDead; n++) dst[aux.Dead[n]] += src[n];
            }
        });
        var deadSums = new float[nDead];
        Ops.SumRows(dPre, deadSums, Compute);
        var colSum = new Tensor(1, Config.DSae);
        for (int n = 0; n < nDead; n++) colSum[aux.Dead[n]] = deadSums[n];
        AddEncoderBiasGradients(colSum, grads["b_enc"], grads["b_dec"]);
    }

    /// <summary>
    /// Backward of a reconstruction b_dec + Σ_e values[e]·W_dec[index(e)] given its gradient <paramref name="dOut"/>:
    /// the decoder, b_dec and, through the codes that passed the ReLU and lie below <paramref name="width"/>, the encoder.
    /// </summary>
    protected void ReconstructionBackward(SaeForward f, float[] values, Tensor dOut, SaeParams grads, int width = int.MaxValue)
    {
        var codes = f.Codes!;
        var dPre = SparseDecoderBackward(codes, values, dOut, grads["W_dec"], grads["b_dec"]);
        for (int e = 0; e < dPre.Length; e++) if (codes.Index[e] >= width || !(codes.Value[e] > 0)) dPre[e] = 0;
        SparseEncoderBackward(f, codes, dPre, grads["W_enc"], grads["b_enc"], grads["b_dec"]);
    }

    public sealed override void FoldDecoderNorm()
    {
        throw new InvalidOperationException($"Folding W_dec_norm is not safe for {Config.Architecture} SAEs: it may change which latents are selected (as SAELens)");
    }

    /// <summary>The batchtopk SAE as the jumprelu SAE SAELens saves for inference (threshold per latent).</summary>
    public JumpReluSae ToJumpRelu()
    {
        if (!IsBatch) throw new InvalidOperationException("only batchtopk and matryoshka_batchtopk SAEs export to jumprelu");
        var cfg = Config with { Architecture = JumpReluSae.Architecture.Name, K = 0, RescaleActsByDecoderNorm = false, MatryoshkaWidths = null };
        var j = new JumpReluSae(cfg, Compute);
        foreach (var (n, t) in Params) t.Span.CopyTo(j.Params[n].Span);
        if (Config.RescaleActsByDecoderNorm)
        {
            // Fold the norms so the jumprelu pre-activation is the ranking value pre·‖W_dec[j]‖.
            var norms = DecoderNorms(j.WDec);
            for (int i = 0; i < j.WEnc.Rows; i++) TensorPrimitives.Multiply(j.WEnc.Row(i), norms, j.WEnc.Row(i));
            TensorPrimitives.Multiply(j.Params["b_enc"].Span, norms, j.Params["b_enc"].Span);
            for (int r = 0; r < norms.Length; r++) if (norms[r] > 0) TensorPrimitives.Divide(j.WDec.Row(r), norms[r], j.WDec.Row(r));
        }
        j.Params["threshold"].Span.Fill((float)TopKThreshold);
        return j;
    }
}
