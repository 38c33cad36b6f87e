using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>
/// An SAE: config, named parameters, a hand-written forward and a hand-written backward. Backward adds the
/// gradient of the sum of the forward's loss terms (those <c>include</c> accepts) into <c>grads</c>.
/// </summary>
public abstract class Sae
{
    protected Sae(SaeConfig config, Compute compute)
    {
        config.Validate();
        Config = config;
        Compute = compute ?? throw new ArgumentNullException(nameof(compute));
        SparseDensity = config.Kind.SparseDensity;
    }

    public SaeConfig Config { get; }
    public SaeParams Params { get; } = new();
    /// <summary>The thread budget of this SAE's kernels (given at construction; a trainer uses the same).</summary>
    public Compute Compute { get; }

    /// <summary>
    /// Below this share of non-zero [B, d_sae] entries the forward and backward work from sparse codes (decode, decoder
    /// and encoder gradients over the active entries only) instead of dense GEMMs; starts at the architecture's
    /// <see cref="SaeArchitecture.SparseDensity"/>. 0 forces dense, 1 sparse (tests use both). Top-k kinds are always sparse.
    /// </summary>
    public double SparseDensity { get; set; }

    public Tensor WEnc => Params["W_enc"];
    public Tensor WDec => Params["W_dec"];
    public Tensor BDec => Params["b_dec"];
    /// <summary>A skip transcoder's skip connection [d_out, d_in]; null for the others.</summary>
    public Tensor? WSkip => Params.Contains("W_skip") ? Params["W_skip"] : null;

    /// <summary>Width of the output (d_out for transcoders, else d_in).</summary>
    public int DOut => Config.OutDim;

    /// <summary>
    /// Forward with the input as its own reconstruction target; with <paramref name="loss"/> null only the
    /// reconstruction loss is computed. Transcoders have no target here, so they compute no loss unless given one
    /// through <see cref="Forward(Tensor, Tensor?, SaeLossOptions?)"/>.
    /// </summary>
    public SaeForward Forward(Tensor x, SaeLossOptions? loss = null) => Forward(x, null, loss);

    /// <summary>
    /// Forward against an explicit reconstruction target [B, d_out] (a transcoder's MLP output; null means the
    /// input itself for SAEs). Applies the run-time activation normalisation (constant_norm_rescale, layer_norm) to
    /// the input and undoes it on the output, so losses compare raw-scale outputs with the raw target.
    /// </summary>
    public SaeForward Forward(Tensor x, Tensor? target, SaeLossOptions? loss)
    {
        if (x.Rank != 2) throw new ArgumentException($"SAE input must be [batch, {Config.DIn}], got [{x.ShapeString}]");
        x.EnsureShape("SAE input", x.Rows, Config.DIn);
        if (target is null && !Config.IsTranscoder) target = x;
        if (target is null && loss is not null)
            throw new ArgumentException($"{Config.Architecture} needs a reconstruction target (the output activations) to compute training losses");
        target?.EnsureShape("SAE target", x.Rows, DOut);
        var norm = ActivationNorm.For(Config.NormalizeActivations, x);
        return ForwardCore(x, norm?.Normalize(x) ?? x, target, norm, loss);
    }

    /// <summary>
    /// The architecture's forward. <paramref name="x"/> is the normalised input (<paramref name="input"/> itself when no
    /// normalisation applies); outputs go through <see cref="ReconstructionLoss"/> so they leave in raw scale.
    /// <paramref name="target"/> is never null except for transcoders at inference.
    /// </summary>
    protected abstract SaeForward ForwardCore(Tensor input, Tensor x, Tensor? target, ActivationNorm? norm, SaeLossOptions? loss);

    public abstract void Backward(SaeForward f, SaeParams grads, Func<string, bool>? include = null);

    /// <summary>Dense latent codes for x (inference).</summary>
    public Tensor Encode(Tensor x) => Forward(x).DenseFeatures();

    /// <summary>The SAE's reconstruction of x.</summary>
    public Tensor Reconstruct(Tensor x) => Forward(x).Output;

    /// <summary>
    /// The error-term forward for splicing into a model: returns SAE(x) + (x − SAE(x)) computed so the model
    /// downstream sees x exactly, plus the reconstruction and the error separately for hooks that edit latents.
    /// </summary>
    public (Tensor Output, Tensor Reconstruction, Tensor Error) ForwardWithError(Tensor x)
    {
        if (Config.IsTranscoder)
            throw new InvalidOperationException($"{Config.Architecture}: the error term needs the output activations, which a transcoder does not see; splice its output yourself");
        var recon = Reconstruct(x);
        var err = x.Clone();
        TensorPrimitives.Subtract(err.Span, recon.Span, err.Span);
        var o = recon.Clone();
        TensorPrimitives.Add(o.Span, err.Span, o.Span);
        return (o, recon, err);
    }

    // ---- shared pieces of forward and backward ----

    /// <summary>The decoder's parameters, d_out wide for transcoders, and W_skip for the architectures with a skip connection.</summary>
    protected void AddDecoderParams()
    {
        Params.Add("W_dec", new Tensor(Config.DSae, Config.OutDim));
        Params.Add("b_dec", new Tensor(Config.OutDim));
        if (Config.Kind.SkipConnection) Params.Add("W_skip", new Tensor(Config.OutDim, Config.DIn));
    }

    /// <summary>output += x·W_skipᵀ for the architectures with a skip connection (x is the raw input: transcoders take no normalisation).</summary>
    protected void AddSkip(Tensor x, Tensor output)
    {
        if (WSkip is { } w) Gemm.MatMul(x, w, output, Compute, Trans.No, Trans.Yes, 1, 1);
    }

    /// <summary>The skip connection's gradient dW_skip += dOutᵀ·x given the output's gradient.</summary>
    protected void SkipBackward(SaeForward f, Tensor dOut, SaeParams grads)
    {
        if (WSkip is not null) Gemm.MatMul(dOut, f.Input, grads["W_skip"], Compute, Trans.Yes, Trans.No, 1, 1);
    }

    /// <summary>sae_in = x − b_dec when apply_b_dec_to_input, else x itself (no copy).</summary>
    protected Tensor ProcessInput(Tensor x)
    {
        if (!Config.ApplyBDecToInput) return x;
        var s = x.Clone();
        Ops.SubtractRowVector(s, BDec.Span);
        return s;
    }

    /// <summary>pre = sae_in·W (+ bias) as a dense [B, d_sae] GEMM.</summary>
    protected Tensor DenseEncode(Tensor saeIn, Tensor w, ReadOnlySpan<float> bias)
    {
        var pre = Gemm.MatMul(saeIn, w, compute: Compute);
        Ops.AddRowVector(pre, bias, compute: Compute);
        return pre;
    }

    /// <summary>Σ_d (out − target)² per row, mean over rows; also returns dLoss/dout = 2(out − target)/B.</summary>
    protected static (double Loss, Tensor Grad) Mse(Tensor output, Tensor target, double coefficient = 1)
    {
        var g = output.Clone();
        TensorPrimitives.Subtract(g.Span, target.Span, g.Span);
        double loss = 0;
        for (int r = 0; r < g.Rows; r++) loss += TensorPrimitives.Dot(g.Row(r), g.Row(r));
        int b = Math.Max(1, g.Rows);
        TensorPrimitives.Multiply(g.Span, (float)(2 * coefficient / b), g.Span);
        return (coefficient * loss / b, g);
    }

    /// <summary>
    /// Undoes the activation normalisation on <paramref name="y"/> in place (y·scale + shift per row; the shift
    /// only when <paramref name="shift"/>) and returns the MSE against <paramref name="target"/> with its gradient
    /// with respect to the normalised-space y (dL/dout·scale per row).
    /// </summary>
    protected static (double Loss, Tensor Grad) ReconstructionLoss(Tensor y, Tensor target, ActivationNorm? norm, double coefficient = 1, bool shift = true)
    {
        norm?.Denormalize(y, shift);
        var (loss, grad) = Mse(y, target, coefficient);
        norm?.ScaleRows(grad);
        return (loss, grad);
    }

    /// <summary>An output buffer [B, d_out] with b_dec in every row.</summary>
    protected Tensor BiasRows(int rows)
    {
        var o = Tensor.Uninitialized(rows, DOut);
        for (int r = 0; r < rows; r++) BDec.Span.CopyTo(o.Row(r));
        return o;
    }

    protected static float[] DecoderNorms(Tensor wDec) => Ops.RowNorms(wDec);

    /// <summary>
    /// Whether a [rows, cols] activation matrix with these per-row entry counts is sparse enough (at most
    /// <paramref name="density"/> of its entries) for the sparse-code forward and backward.
    /// </summary>
    protected static bool BelowDensity(int[] rowCounts, int cols, double density)
    {
        long total = 0;
        foreach (int n in rowCounts) total += n;
        return total <= density * rowCounts.Length * cols;
    }

    /// <summary>
    /// b_dec + latents·W_dec: through the sparse codes when given (their values, or <paramref name="values"/> on the
    /// same entries), else the dense latents by GEMM.
    /// </summary>
    protected Tensor DecodeLatents(Tensor? dense, SparseCodes? codes, float[]? values = null)
    {
        if (codes is null)
        {
            if (dense is null) throw new ArgumentNullException(nameof(dense), "dense latents are needed without sparse codes");
            var output = BiasRows(dense.Rows);
            Gemm.MatMul(dense, WDec, output, beta: 1, compute: Compute);
            return output;
        }
        var sparse = Tensor.Uninitialized(codes.Rows, DOut);
        SparseKernels.Decode(codes, WDec, sparse, Compute, BDec.Span, values);
        return sparse;
    }

    /// <summary>
    /// Runs <paramref name="body"/>(r0, r1, accumulators) over fixed blocks of rows in parallel, each block with its
    /// own zeroed float64 accumulators (<paramref name="count"/> arrays of <paramref name="cols"/>), and returns their
    /// sums taken in block order, so per-column reductions over a batch do not depend on the number of threads.
    /// </summary>
    protected double[][] RowBlockSums(int rows, int cols, int count, Action<int, int, double[][]> body)
    {
        const int BlockRows = 256;
        int blocks = Math.Max(1, (rows + BlockRows - 1) / BlockRows);
        var partial = new double[blocks][][];
        Compute.For(blocks, blk =>
        {
            var acc = new double[count][];
            for (int c = 0; c < count; c++) acc[c] = new double[cols];
            body(blk * BlockRows, Math.Min(rows, (blk + 1) * BlockRows), acc);
            partial[blk] = acc;
        });
        var total = new double[count][];
        for (int c = 0; c < count; c++)
        {
            total[c] = new double[cols];
            for (int blk = 0; blk < blocks; blk++) TensorPrimitives.Add(total[c], partial[blk][c], total[c]);
        }
        return total;
    }

    /// <summary>
    /// ReLU backward: grad = pre > 0 ? grad (+ <paramref name="add"/>[j]) : 0, returning the column sums of the
    /// result (the encoder-bias gradient) and, when <paramref name="reluColumnSums"/> is given, filling it with the
    /// column sums of ReLU(pre). The optional per-latent term folds a penalty's gradient (the L1 one) into the same
    /// pass, so the [B, d_sae] tensors are read once.
    /// </summary>
    protected float[] ReluBackward(Tensor pre, Tensor grad, float[]? add = null, float[]? reluColumnSums = null)
    {
        int cols = pre.Cols;
        bool relu = reluColumnSums is not null;
        var sums = RowBlockSums(pre.Rows, cols, relu ? 2 : 1, (r0, r1, acc) =>
        {
            var gs = acc[0].AsSpan();
            var rs = relu ? acc[1].AsSpan() : default;
            for (int r = r0; r < r1; r++) ActivationKernels.ReluBackwardRow(pre.Row(r), grad.Row(r), add, gs, rs, Simd.Best);
        });
        if (relu) for (int j = 0; j < cols; j++) reluColumnSums![j] = (float)sums[1][j];
        return Array.ConvertAll(sums[0], v => (float)v);
    }

    /// <summary>
    /// Adds to dW_dec[j] the gradient through ‖W_dec[j]‖ given dL/d‖W_dec[j]‖ = <paramref name="dNorm"/>[j].
    /// </summary>
    protected static void AddNormGradient(Tensor wDec, float[] norms, ReadOnlySpan<double> dNorm, Tensor dWDec)
    {
        for (int j = 0; j < norms.Length; j++)
        {
            if (dNorm[j] == 0 || norms[j] == 0) continue;
            TensorPrimitives.MultiplyAdd(wDec.Row(j), (float)(dNorm[j] / norms[j]), dWDec.Row(j), dWDec.Row(j));
        }
    }

    /// <summary>
    /// Backward of a dense encoder pre = sae_in·W + b: dW += sae_inᵀ·dPre, db += Σ_rows dPre, and through the
    /// b_dec subtraction in the input, db_dec −= W·(Σ_rows dPre). Pass the column sums when already computed.
    /// </summary>
    protected void DenseEncoderBackward(SaeForward f, Tensor dPre, Tensor w, Tensor dW, Tensor dBias, Tensor dBDec, float[]? dPreColumnSums = null)
    {
        Gemm.MatMul(f.SaeIn, dPre, dW, Compute, Trans.Yes, Trans.No, 1, 1);
        var colSum = new Tensor(1, dPre.Cols);
        if (dPreColumnSums is not null) dPreColumnSums.CopyTo(colSum.Span);
        else Ops.SumRows(dPre, colSum.Span, Compute);
        AddEncoderBiasGradients(colSum, dBias, dBDec, w);
    }

    /// <summary>
    /// Given the column sums of dPre [1, d_sae]: db_enc += them, and through the b_dec subtraction in the input,
    /// db_dec −= W·(them) with W the encoder weight (W_enc unless given).
    /// </summary>
    protected void AddEncoderBiasGradients(Tensor colSum, Tensor dBias, Tensor dBDec, Tensor? w = null)
    {
        w ??= WEnc;
        TensorPrimitives.Add(dBias.Span, colSum.Span, dBias.Span);
        if (Config.ApplyBDecToInput)
            Gemm.Multiply(Trans.No, Trans.Yes, w.Dim(0), 1, w.Dim(1), -1, w.Span, w.Dim(1), colSum.Span, colSum.Cols, 1, dBDec.Span, 1, Compute);
    }

    /// <summary>Sparse-code version of <see cref="DenseEncoderBackward"/>: dPre given per code entry.</summary>
    protected void SparseEncoderBackward(SaeForward f, SparseCodes codes, float[] dPre, Tensor dW, Tensor dBias, Tensor dBDec)
    {
        SparseKernels.ScatterOuterAddTransposed(codes, dPre, f.SaeIn, dW, Compute);
        var colSum = new Tensor(1, codes.Cols);
        for (int e = 0; e < codes.Count; e++) colSum[codes.Index[e]] += dPre[e];
        AddEncoderBiasGradients(colSum, dBias, dBDec);
    }

    /// <summary>Decoder backward for dense codes: dW_dec += fᵀ·dOut, db_dec += Σ dOut; returns dF = dOut·W_decᵀ.</summary>
    protected Tensor DenseDecoderBackward(Tensor features, Tensor dOut, Tensor dWDec, Tensor? dBDec)
    {
        Gemm.MatMul(features, dOut, dWDec, Compute, Trans.Yes, Trans.No, 1, 1);
        if (dBDec is not null) Ops.SumRows(dOut, dBDec.Span, Compute, accumulate: true);
        return Gemm.MatMul(dOut, WDec, Compute, Trans.No, Trans.Yes);
    }

    /// <summary>
    /// Decoder backward for sparse codes: dW_dec += Σ_e values[e]·dOut[row(e)] into row index(e), db_dec += Σ dOut
    /// (when given); returns the gradient with respect to each code entry, dOut[row(e)]·W_dec[index(e)].
    /// </summary>
    protected float[] SparseDecoderBackward(SparseCodes codes, float[] values, Tensor dOut, Tensor dWDec, Tensor? dBDec)
    {
        var dCodes = codes.NewValues();
        SparseKernels.GatherDot(codes, dOut, WDec, dCodes, Compute);
        SparseKernels.ScatterOuterAdd(codes, values, dOut, dWDec, Compute);
        if (dBDec is not null) Ops.SumRows(dOut, dBDec.Span, Compute, accumulate: true);
        return dCodes;
    }

    // ---- decoder-norm utilities (trainer hooks) ----

    /// <summary>Rescales every decoder row to unit norm (Anthropic/drrik constraint; call after each step).</summary>
    public void NormalizeDecoderRows()
    {
        var w = WDec;
        for (int j = 0; j < w.Rows; j++)
        {
            float n = TensorPrimitives.Norm(w.Row(j));
            if (n > 0) TensorPrimitives.Divide(w.Row(j), n, w.Row(j));
        }
    }

    /// <summary>Removes from dW_dec the component parallel to each decoder row (keeps the update on the unit sphere).</summary>
    public void RemoveGradientParallelToDecoder(SaeParams grads)
    {
        var w = WDec; var g = grads["W_dec"];
        for (int j = 0; j < w.Rows; j++)
        {
            float nn = TensorPrimitives.Dot(w.Row(j), w.Row(j));
            if (nn == 0) continue;
            float proj = TensorPrimitives.Dot(g.Row(j), w.Row(j)) / nn;
            TensorPrimitives.MultiplyAdd(w.Row(j), -proj, g.Row(j), g.Row(j));
        }
    }

    /// <summary>
    /// Scales decoder rows to unit norm and compensates in the encoder so outputs are unchanged (SAELens
    /// fold_W_dec_norm). Refused where the top-k choice would change.
    /// </summary>
    public virtual void FoldDecoderNorm()
    {
        var norms = DecoderNorms(WDec);
        for (int j = 0; j < norms.Length; j++)
            if (norms[j] > 0) TensorPrimitives.Divide(WDec.Row(j), norms[j], WDec.Row(j));
        ScaleLatents(norms);
    }

    /// <summary>Multiplies latent j's encoder side by s[j] (columns of W_enc, biases, thresholds).</summary>
    protected virtual void ScaleLatents(float[] s)
    {
        var w = WEnc;
        for (int i = 0; i < w.Rows; i++) TensorPrimitives.Multiply(w.Row(i), s, w.Row(i));
        if (Params.Contains("b_enc")) TensorPrimitives.Multiply(Params["b_enc"].Span, s, Params["b_enc"].Span);
    }

    /// <summary>
    /// Folds an activation scaling factor c (the SAE was trained on c·x) into the weights so the SAE takes
    /// raw x and returns raw-scale reconstructions: W_enc·c, W_dec/c, b_dec/c. Nothing to do under
    /// constant_norm_rescale or layer_norm: the SAE normalises each row itself and scales its output back.
    /// </summary>
    public void FoldActivationScale(float c)
    {
        if (Config.IsTranscoder)
            throw new InvalidOperationException($"{Config.Architecture}: a transcoder's input and output activations are scaled separately; fold both with FoldActivationScales");
        FoldActivationScales(c, c);
    }

    /// <summary>
    /// Folds the scaling factors of a transcoder's input (<paramref name="input"/>) and target (<paramref name="output"/>)
    /// into its weights (trained on input·x and output·y, it then takes raw x and predicts raw y): W_enc·input,
    /// W_dec/output, b_dec/output, W_skip·input/output. For an SAE both factors are its one scale.
    /// </summary>
    public void FoldActivationScales(float input, float output)
    {
        foreach (float c in new[] { input, output })
            if (!(c > 0) || !float.IsFinite(c)) throw new ArgumentOutOfRangeException(nameof(input), $"scaling factor must be positive and finite, got {c}");
        if (!Config.IsTranscoder && input != output) throw new ArgumentException($"{Config.Architecture}: an SAE's input is its target, so it has one scaling factor (got {input} and {output})");
        if (Config.NormalizeActivations is "constant_norm_rescale" or "layer_norm") return;
        TensorPrimitives.Multiply(WEnc.Span, input, WEnc.Span);
        TensorPrimitives.Divide(WDec.Span, output, WDec.Span);
        TensorPrimitives.Divide(BDec.Span, output, BDec.Span);
        if (WSkip is { } w) TensorPrimitives.Multiply(w.Span, input / output, w.Span);
    }
}
