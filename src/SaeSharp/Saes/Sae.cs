using System.Runtime.Intrinsics;
using System.Collections;
using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>Named parameter tensors in a fixed order, so an optimiser can walk any architecture generically.</summary>
public sealed class SaeParams : IEnumerable<KeyValuePair<string, Tensor>>
{
    private readonly List<KeyValuePair<string, Tensor>> _items = [];

    public Tensor this[string name] =>
        _items.Find(p => p.Key == name).Value ?? throw new KeyNotFoundException($"SAE has no parameter '{name}'");

    public bool Contains(string name) => _items.Exists(p => p.Key == name);
    public IEnumerable<string> Names => _items.Select(p => p.Key);

    public void Add(string name, Tensor t)
    {
        if (Contains(name)) throw new ArgumentException($"parameter '{name}' added twice");
        _items.Add(new(name, t));
    }

    /// <summary>A parameter set with the same names and shapes, all zeros (a gradient buffer).</summary>
    public SaeParams ZerosLike()
    {
        var g = new SaeParams();
        foreach (var (n, t) in _items) g.Add(n, new Tensor(t.Shape.ToArray()));
        return g;
    }

    public void Clear() { foreach (var (_, t) in _items) Ops.Clear(t); }

    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => _items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Training-time loss settings (SAELens names in comments). Coefficients multiply their loss term.</summary>
public sealed record SaeLossOptions
{
    /// <summary>l1_coefficient (standard, gated).</summary>
    public double L1Coefficient { get; init; } = 1;
    /// <summary>lp_norm of the weighted L1 penalty (standard).</summary>
    public double LpNorm { get; init; } = 1;
    /// <summary>l0_coefficient (jumprelu).</summary>
    public double L0Coefficient { get; init; } = 1;
    /// <summary>aux_loss_coefficient (topk/batchtopk AuxK).</summary>
    public double AuxKCoefficient { get; init; } = 1;
    /// <summary>Latents counted dead by the caller's tracker (length d_sae); drives AuxK and the pre-act loss.</summary>
    public bool[]? DeadMask { get; init; }
    /// <summary>AuxK k; 0 means d_in/2 as SAELens.</summary>
    public int AuxK { get; init; }
    /// <summary>jumprelu_sparsity_loss_mode: "step" or "tanh".</summary>
    public string JumpReluSparsityMode { get; init; } = "step";
    /// <summary>jumprelu_tanh_scale.</summary>
    public double JumpReluTanhScale { get; init; } = 4;
    /// <summary>pre_act_loss_coefficient; null disables the loss.</summary>
    public double? PreActLossCoefficient { get; init; }
    /// <summary>use_matryoshka_aux_loss (matryoshka_batchtopk): AuxK per matryoshka level against that level's own residual.</summary>
    public bool UseMatryoshkaAuxLoss { get; init; }
}

/// <summary>
/// One forward pass: the reconstruction, the latent codes (dense or sparse), the pre-activations and every
/// loss term by its SAELens name (already multiplied by its coefficient). <see cref="State"/> carries what
/// the architecture's backward needs beyond these.
/// </summary>
public sealed class SaeForward
{
    public required Tensor Input { get; init; }
    /// <summary>The reconstruction target (the input itself unless a transcoder's separate target was given; null when none).</summary>
    public Tensor? Target { get; init; }
    /// <summary>The run-time activation normalisation applied to the input (null for none / expected_average_only_in).</summary>
    public ActivationNorm? Norm { get; init; }
    /// <summary>The encoder's input after normalisation and the b_dec subtraction (equals x when neither applies).</summary>
    public required Tensor SaeIn { get; init; }
    public required Tensor Output { get; init; }
    public required Tensor PreActs { get; init; }
    public Tensor? Features { get; init; }
    public SparseCodes? Codes { get; init; }
    public Dictionary<string, double> Losses { get; } = [];
    public SaeLossOptions? Options { get; init; }
    public object? State { get; init; }

    public double TotalLoss => Losses.Values.Sum();

    internal SaeForward WithLosses(Dictionary<string, double> losses)
    {
        foreach (var (k, v) in losses) Losses[k] = v;
        return this;
    }

    /// <summary>The latent codes as a dense [B, d_sae] tensor.</summary>
    public Tensor DenseFeatures() => Features ?? Codes!.ToDense();
}

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
        if (WSkip is { } w) Gemm.MatMul(x, w, output, Trans.No, Trans.Yes, 1, 1, Compute);
    }

    /// <summary>The skip connection's gradient dW_skip += dOutᵀ·x given the output's gradient.</summary>
    protected void SkipBackward(SaeForward f, Tensor dOut, SaeParams grads)
    {
        if (WSkip is not null) Gemm.MatMul(dOut, f.Input, grads["W_skip"], Trans.Yes, Trans.No, 1, 1, Compute);
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
        Ops.AddRowVector(pre, bias);
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
        SparseKernels.Decode(codes, WDec, sparse, BDec.Span, Compute, values);
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
            for (int r = r0; r < r1; r++)
            {
                var p = pre.Row(r); var g = grad.Row(r);
                int j = 0;
                if (Vector512.IsHardwareAccelerated)
                    for (; j + 16 <= cols; j += 16)
                    {
                        var pv = Vector512.Create(p.Slice(j, 16));
                        var gv = Vector512.Create(g.Slice(j, 16));
                        if (add is not null) gv += Vector512.Create(add.AsSpan(j, 16));
                        var keep = Vector512.GreaterThan(pv, Vector512<float>.Zero);
                        gv = Vector512.ConditionalSelect(keep, gv, Vector512<float>.Zero);
                        gv.CopyTo(g.Slice(j, 16));
                        AddWidened(gs.Slice(j, 16), gv);
                        if (relu) AddWidened(rs.Slice(j, 16), Vector512.ConditionalSelect(keep, pv, Vector512<float>.Zero));
                    }
                for (; j < cols; j++)
                {
                    bool on = p[j] > 0;
                    g[j] = on ? g[j] + (add is null ? 0 : add[j]) : 0;
                    gs[j] += g[j];
                    if (relu) rs[j] += on ? p[j] : 0;
                }
            }
        });
        if (relu) for (int j = 0; j < cols; j++) reluColumnSums![j] = (float)sums[1][j];
        return Array.ConvertAll(sums[0], v => (float)v);
    }

    private static void AddWidened(Span<double> acc, Vector512<float> v)
    {
        var (lo, hi) = Vector512.Widen(v);
        (Vector512.Create<double>(acc[..8]) + lo).CopyTo(acc[..8]);
        (Vector512.Create<double>(acc.Slice(8, 8)) + hi).CopyTo(acc.Slice(8, 8));
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
        Gemm.MatMul(f.SaeIn, dPre, dW, Trans.Yes, Trans.No, 1, 1, Compute);
        var colSum = new Tensor(1, dPre.Cols);
        if (dPreColumnSums is not null) dPreColumnSums.CopyTo(colSum.Span);
        else Ops.SumRows(dPre, colSum.Span);
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
        Gemm.MatMul(features, dOut, dWDec, Trans.Yes, Trans.No, 1, 1, Compute);
        if (dBDec is not null) Ops.SumRows(dOut, dBDec.Span, accumulate: true);
        return Gemm.MatMul(dOut, WDec, Trans.No, Trans.Yes, Compute);
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
        if (dBDec is not null) Ops.SumRows(dOut, dBDec.Span, accumulate: true);
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

/// <summary>
/// SAELens run-time activation normalisation as a per-row affine map: the SAE sees x̃ = (x − shift)/inScale and its
/// output y leaves as y·outScale + shift. constant_norm_rescale: inScale = outScale = ‖x‖/√d_in, shift 0;
/// layer_norm: shift = mean, inScale = std + 1e-5, outScale = std (unbiased std, as torch.std).
/// </summary>
public sealed class ActivationNorm
{
    public const double LayerNormEps = 1e-5;

    private ActivationNorm(double[] inScale, double[] outScale, double[]? shift)
    {
        InScale = inScale; OutScale = outScale; Shift = shift;
    }

    public IReadOnlyList<double> InScale { get; }
    public IReadOnlyList<double> OutScale { get; }
    public IReadOnlyList<double>? Shift { get; }

    /// <summary>The normalisation of rows of <paramref name="x"/> for a cfg normalize_activations mode; null when the forward does nothing.</summary>
    public static ActivationNorm? For(string mode, Tensor x)
    {
        int b = x.Rows, d = x.Cols;
        switch (mode)
        {
            case "none" or "expected_average_only_in": return null;
            case "constant_norm_rescale":
            {
                var s = new double[b];
                for (int r = 0; r < b; r++)
                {
                    double n = Math.Sqrt(TensorPrimitives.Dot(x.Row(r), x.Row(r)));
                    s[r] = n > 0 ? n / Math.Sqrt(d) : 1; // a zero row stays zero
                }
                return new ActivationNorm(s, s, null);
            }
            case "layer_norm":
            {
                var mu = new double[b]; var sIn = new double[b]; var sOut = new double[b];
                for (int r = 0; r < b; r++)
                {
                    var row = x.Row(r);
                    double m = 0; foreach (float v in row) m += v; m /= d;
                    double ss = 0; foreach (float v in row) ss += (v - m) * (v - m);
                    double std = d > 1 ? Math.Sqrt(ss / (d - 1)) : 0;
                    mu[r] = m; sIn[r] = std + LayerNormEps; sOut[r] = std;
                }
                return new ActivationNorm(sIn, sOut, mu);
            }
            default: throw new ArgumentException($"cfg 'normalize_activations': unknown mode '{mode}'");
        }
    }

    /// <summary>A normalised copy of x: (x − shift)/inScale per row.</summary>
    public Tensor Normalize(Tensor x)
    {
        var o = Tensor.Uninitialized(x.Rows, x.Cols);
        for (int r = 0; r < x.Rows; r++)
        {
            var src = x.Row(r); var dst = o.Row(r);
            double m = Shift?[r] ?? 0, s = InScale[r];
            for (int i = 0; i < src.Length; i++) dst[i] = (float)((src[i] - m) / s);
        }
        return o;
    }

    /// <summary>y·outScale (+ shift) per row, in place.</summary>
    public void Denormalize(Tensor y, bool shift = true)
    {
        for (int r = 0; r < y.Rows; r++)
        {
            var row = y.Row(r);
            double s = OutScale[r], m = shift ? Shift?[r] ?? 0 : 0;
            for (int i = 0; i < row.Length; i++) row[i] = (float)(row[i] * s + m);
        }
    }

    /// <summary>Multiplies each row by its outScale in place (the chain rule through <see cref="Denormalize"/>).</summary>
    public void ScaleRows(Tensor g)
    {
        for (int r = 0; r < g.Rows; r++) TensorPrimitives.Multiply(g.Row(r), (float)OutScale[r], g.Row(r));
    }
}
