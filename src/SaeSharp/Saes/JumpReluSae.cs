using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>
/// SAELens "jumprelu": f = ReLU(pre)·[pre &gt; θ], pre = (x − b_dec)·W_enc + b_enc, θ = threshold per latent.
/// Threshold gradients use the straight-through estimator with rectangle kernel K(u) = [−½ &lt; u &lt; ½] and
/// bandwidth ε: ∂f/∂θ := −(θ/ε)·K((pre − θ)/ε), ∂[pre &gt; θ]/∂θ := −(1/ε)·K((pre − θ)/ε).
/// Gradients are with respect to θ itself; a trainer that parametrises log θ (as SAELens) multiplies by θ.
/// Losses: mse_loss, l0_loss (mode step or tanh), pre_act_loss (optional, on dead latents).
/// Also SAELens "jumprelu_transcoder" (the same encoder and losses, W_dec [d_sae, d_out], b_dec [d_out], no b_dec
/// subtraction, mse_loss against a separate target) and "jumprelu_skip_transcoder" (adds x·W_skipᵀ).
/// </summary>
public sealed class JumpReluSae : Sae
{
    public static SaeArchitecture Architecture { get; } = new()
    {
        Name = "jumprelu", Create = (c, compute) => new JumpReluSae(c, compute), SparsityPenalty = true, SparseDensity = 0.05,
        CfgKeys = ["jumprelu_init_threshold", "jumprelu_bandwidth"],
        // The l1_coefficient setting is jumprelu's L0 coefficient.
        TrainingKeys = ["l0_coefficient=l1_coefficient", "l0_warm_up_steps=l1_warm_up_steps", "jumprelu_init_threshold", "jumprelu_bandwidth",
            "jumprelu_sparsity_loss_mode", "jumprelu_tanh_scale", "pre_act_loss_coefficient"],
    };

    public static SaeArchitecture Transcoder { get; } = Architecture with
    {
        Name = "jumprelu_transcoder", Transcoder = true, CfgKeys = [.. Architecture.CfgKeys, "d_out"],
    };

    public static SaeArchitecture SkipTranscoder { get; } = Transcoder with { Name = "jumprelu_skip_transcoder", SkipConnection = true };

    public JumpReluSae(SaeConfig config, Compute compute) : base(config, compute)
    {
        if (config.Kind.Create != Architecture.Create)
            throw new ArgumentException($"JumpReluSae cannot be a '{config.Architecture}' SAE");
        Params.Add("W_enc", new Tensor(config.DIn, config.DSae));
        Params.Add("b_enc", new Tensor(config.DSae));
        AddDecoderParams();
        Params.Add("threshold", Tensor.Filled((float)config.JumpReluInitThreshold, config.DSae));
    }

    public Tensor Threshold => Params["threshold"];

    // SparseDensity counts the entries the backward needs: firing, pre above θ, inside the threshold's kernel window,
    // or under the pre-act loss.

    // MseGrad is null for a transcoder's inference forward (no target).
    private sealed record State(Tensor? MseGrad, float[] Norms);

    /// <summary>Rectangle kernel K(u) = 1 on (−½, ½).</summary>
    public static double Rectangle(double u) => u > -0.5 && u < 0.5 ? 1 : 0;

    protected override SaeForward ForwardCore(Tensor input, Tensor x, Tensor? target, ActivationNorm? norm, SaeLossOptions? loss)
    {
        var saeIn = ProcessInput(x);
        var pre = DenseEncode(saeIn, WEnc, Params["b_enc"].Span);
        var th = Threshold.Span.ToArray();
        bool tanh = loss is not null && CheckMode(loss);
        bool[]? dead = loss?.PreActLossCoefficient is not null && loss.DeadMask is { } d && d.Contains(true) ? d : null;
        if (dead is not null) CheckDead(dead);
        // An entry is needed when pre > θ (firing or counted by the step L0), inside the kernel window |pre − θ| < ε/2
        // (widened slightly so float rounding never drops one the double-precision kernel keeps), or under the
        // pre-act loss (a dead latent with θ > pre).
        float halfWindow = (float)(Config.JumpReluBandwidth / 2 * (1 + 1e-5)) + 1e-30f;
        var deadLanes = new float[th.Length];
        if (dead is not null) for (int j = 0; j < th.Length; j++) deadLanes[j] = dead[j] ? 1 : 0;
        var f = Tensor.Uninitialized(pre.Rows, pre.Cols);
        var counts = new int[pre.Rows];
        var aboveRows = new int[pre.Rows];
        Compute.ForRange(pre.Rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var p = pre.Row(r); var o = f.Row(r);
                (counts[r], aboveRows[r]) = ActivationKernels.JumpReluRow(p, th, deadLanes, halfWindow, o, null, 0, Simd.Best);
            }
        });
        SparseCodes? codes = null;
        if (BelowDensity(counts, pre.Cols, SparseDensity))
        {
            var c = codes = SparseCodes.FromRowCounts(pre.Cols, counts);
            Compute.ForRange(pre.Rows, 16, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++) ActivationKernels.JumpReluRow(pre.Row(r), th, deadLanes, halfWindow, f.Row(r), c, r, Simd.Best);
            });
        }
        var output = DecodeLatents(f, codes);
        AddSkip(x, output);
        var losses = new Dictionary<string, double>();
        Tensor? mseGrad = null;
        if (target is not null) (losses["mse_loss"], mseGrad) = ReconstructionLoss(output, target, norm);
        var norms = DecoderNorms(WDec);
        if (loss is not null)
        {
            int b = Math.Max(1, x.Rows);
            // Per-row sums in parallel, added in row order: the same totals for any thread count. Entries outside the
            // needed set add exactly zero (not above θ, f = 0, no pre-act term), so the sparse path's sums are the same.
            var l0Rows = new double[x.Rows];
            var preActRows = new double[x.Rows];
            Compute.ForRange(x.Rows, 16, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    var p = pre.Row(r); var fr = f.Row(r);
                    double l0 = 0, pa = 0;
                    void Add(ReadOnlySpan<float> p, ReadOnlySpan<float> fr, int j)
                    {
                        l0 += tanh ? Math.Tanh(loss.JumpReluTanhScale * fr[j] * norms[j]) : (p[j] > th[j] ? 1 : 0);
                        if (dead is not null && dead[j]) pa += Math.Max(0.0, (double)th[j] - p[j]) * norms[j];
                    }
                    if (!tanh && dead is null) l0 = aboveRows[r]; // the step L0 is the count the forward pass made
                    else if (codes is null) for (int j = 0; j < p.Length; j++) Add(p, fr, j);
                    else foreach (int j in codes.RowIndex(r)) Add(p, fr, j);
                    l0Rows[r] = l0; preActRows[r] = pa;
                }
            });
            losses["l0_loss"] = loss.L0Coefficient * l0Rows.Sum() / b;
            if (dead is not null) losses["pre_act_loss"] = loss.PreActLossCoefficient!.Value * preActRows.Sum() / b;
        }
        return new SaeForward
        {
            Input = input, Target = target, Norm = norm, SaeIn = saeIn, Output = output, PreActs = pre, Features = f, Codes = codes,
            Options = loss, State = new State(mseGrad, norms),
        }.WithLosses(losses);
    }

    private static bool CheckMode(SaeLossOptions loss) => loss.JumpReluSparsityMode switch
    {
        "step" => false,
        "tanh" => true,
        _ => throw new ArgumentException($"jumprelu_sparsity_loss_mode must be 'step' or 'tanh', got '{loss.JumpReluSparsityMode}'"),
    };

    private void CheckDead(bool[] dead)
    {
        if (dead.Length != Config.DSae) throw new ArgumentException($"dead mask has {dead.Length} entries, d_sae is {Config.DSae}");
    }

    public override void Backward(SaeForward f, SaeParams grads, Func<string, bool>? include = null)
    {
        include ??= _ => true;
        var st = (State)f.State!;
        if (f.Codes is not null) { SparseBackward(f, st, grads, include); return; }
        var feats = f.Features!; var pre = f.PreActs;
        var dWDec = grads["W_dec"]; var dTh = grads["threshold"].Span;
        var th = Threshold.Span;
        double eps = Config.JumpReluBandwidth;
        int b = Math.Max(1, feats.Rows);
        var dOut = include("mse_loss") ? st.MseGrad : null;
        var dF = dOut is not null ? DenseDecoderBackward(feats, dOut, dWDec, grads["b_dec"]) : new Tensor(feats.Rows, Config.DSae);
        if (dOut is not null) SkipBackward(f, dOut, grads);
        var dPre = Tensor.Uninitialized(feats.Rows, Config.DSae);
        var opt = f.Options;
        bool l0 = opt is not null && f.Losses.ContainsKey("l0_loss") && include("l0_loss");
        bool tanh = opt is not null && CheckMode(opt);
        bool preAct = f.Losses.ContainsKey("pre_act_loss") && include("pre_act_loss");
        var thArr = th.ToArray();
        // Rows in parallel blocks; the threshold, decoder-norm and encoder-bias gradients are column sums. Without
        // the tanh penalty or the pre-act loss (SAELens's default step mode) no entry touches the decoder norms, and
        // the per-entry rule runs eight or sixteen lanes at a time (StepModeEntries).
        bool vector = !tanh && !preAct;
        var sums = RowBlockSums(feats.Rows, Config.DSae, 3, (r0, r1, acc) =>
        {
            double[] dThAcc = acc[0], dNorm = acc[1], dPreSum = acc[2];
            for (int r = r0; r < r1; r++)
            {
                var p = pre.Row(r); var fr = feats.Row(r); var dfr = dF.Row(r); var dpr = dPre.Row(r);
                if (vector)
                {
                    StepModeEntries(p, fr, dfr, thArr, dpr, dThAcc, dPreSum, eps, l0 ? opt!.L0Coefficient / b : 0, Simd.Best);
                    continue;
                }
                for (int j = 0; j < p.Length; j++)
                {
                    dpr[j] = (float)EntryGradient(p[j], fr[j], dfr[j], j, thArr, st.Norms, opt, b, l0, tanh, preAct, dThAcc, dNorm);
                    dPreSum[j] += dpr[j];
                }
            }
        });
        for (int j = 0; j < dTh.Length; j++) dTh[j] += (float)sums[0][j];
        AddNormGradient(WDec, st.Norms, sums[1], dWDec);
        DenseEncoderBackward(f, dPre, WEnc, grads["W_enc"], grads["b_enc"], grads["b_dec"], Array.ConvertAll(sums[2], v => (float)v));
    }

    /// <summary>
    /// <see cref="EntryGradient"/> without the tanh penalty and the pre-act loss, over a row's lanes at a vector width: dPre = f ≠ 0 ? dL/df
    /// : 0, and θ's straight-through terms −(L0/(b·ε))·K and −(θ/ε)·K·dL/df (where dL/df ≠ 0) summed into float64
    /// column accumulators with the column sums of dPre.
    /// </summary>
    internal static void StepModeEntries(ReadOnlySpan<float> pre, ReadOnlySpan<float> f, ReadOnlySpan<float> dF, ReadOnlySpan<float> threshold,
        Span<float> dPre, Span<double> dThreshold, Span<double> dPreSum, double bandwidth, double l0PerRow, SimdWidth width)
    {
        var loop = new JumpReluEntryLoop(pre, f, dF, threshold, dPre, dThreshold, dPreSum, bandwidth, l0PerRow);
        Simd.Run(ref loop, width);
    }

    private readonly ref struct JumpReluEntryLoop(ReadOnlySpan<float> pre, ReadOnlySpan<float> f, ReadOnlySpan<float> dF, ReadOnlySpan<float> threshold,
        Span<float> dPre, Span<double> dThreshold, Span<double> dPreSum, double bandwidth, double l0PerRow) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _pre = pre, _f = f, _dF = dF, _th = threshold;
        private readonly Span<float> _dPre = dPre;
        private readonly Span<double> _dTh = dThreshold, _dPreSum = dPreSum;
        private readonly float _invEps = (float)(1 / bandwidth), _negInvEps = (float)(-1 / bandwidth), _l0Term = (float)(-l0PerRow / bandwidth);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var pre = _pre; var f = _f; var dF = _dF; var th = _th; var dPre = _dPre; var dTh = _dTh; var dPreSum = _dPreSum;
            var invEps = T.Create(_invEps); var negInvEps = T.Create(_negInvEps); var l0Term = T.Create(_l0Term);
            var half = T.Create(0.5f); var minusHalf = T.Create(-0.5f);
            for (; j + T.Count <= pre.Length; j += T.Count)
            {
                var t = T.Load(th, j); var df = T.Load(dF, j);
                var u = (T.Load(pre, j) - t) * invEps;
                var window = T.GreaterThan(u, minusHalf) & T.LessThan(u, half);
                var nonZeroDf = ~T.EqualTo(df, T.Zero);
                var dp = T.Select(~T.EqualTo(T.Load(f, j), T.Zero), df, T.Zero);
                var thTerm = l0Term + T.Select(nonZeroDf, t * negInvEps * df, T.Zero);
                dp.Store(dPre, j);
                dp.AddWidenedTo(dPreSum, j);
                T.Select(window, thTerm, T.Zero).AddWidenedTo(dTh, j);
            }
            return j;
        }
    }

    /// <summary>
    /// One entry's gradient with respect to its pre-activation, given dL/df (<paramref name="dfMse"/>), adding its
    /// threshold and decoder-norm terms into the per-latent accumulators.
    /// </summary>
    private double EntryGradient(float pre, float f, float dfMse, int j, float[] th, float[] norms, SaeLossOptions? opt, int b,
        bool l0, bool tanh, bool preAct, double[] dTh, double[] dNorm)
    {
        double eps = Config.JumpReluBandwidth;
        double kern = Rectangle((pre - (double)th[j]) / eps);
        double df = dfMse;
        // tanh(a·f·‖W_dec‖) has slope a·‖W_dec‖ at f = 0 too: inactive latents still feed the threshold's STE.
        if (l0 && tanh)
        {
            double a = opt!.JumpReluTanhScale, t = Math.Tanh(a * f * norms[j]);
            double c = opt.L0Coefficient / b * a * (1 - t * t);
            df += c * norms[j];
            dNorm[j] += c * f;
        }
        if (l0 && !tanh) dTh[j] += -opt!.L0Coefficient / b * kern / eps;
        // JumpReLU: pass-through where active; threshold pseudo-gradient inside the kernel window.
        double dp = f != 0 ? df : 0;
        if (df != 0) dTh[j] += -(th[j] / eps) * kern * df;
        if (preAct && opt!.DeadMask![j] && th[j] > pre)
        {
            double c = opt.PreActLossCoefficient!.Value / b;
            dp -= c * norms[j];
            dTh[j] += c * norms[j];
            dNorm[j] += c * ((double)th[j] - pre);
        }
        return (float)dp;
    }

    // The backward of the sparse forward: every entry with a non-zero term is in the codes, so the products run
    // over them and the per-entry rule is the dense path's.
    private void SparseBackward(SaeForward f, State st, SaeParams grads, Func<string, bool> include)
    {
        var codes = f.Codes!; var pre = f.PreActs;
        var dOut = include("mse_loss") ? st.MseGrad : null;
        var dF = dOut is not null ? SparseDecoderBackward(codes, codes.Value, dOut, grads["W_dec"], grads["b_dec"]) : codes.NewValues();
        if (dOut is not null) SkipBackward(f, dOut, grads);
        var opt = f.Options;
        int b = Math.Max(1, codes.Rows);
        bool l0 = opt is not null && f.Losses.ContainsKey("l0_loss") && include("l0_loss");
        bool tanh = opt is not null && CheckMode(opt);
        bool preAct = f.Losses.ContainsKey("pre_act_loss") && include("pre_act_loss");
        var th = Threshold.Span.ToArray();
        var dPre = codes.NewValues();
        var sums = RowBlockSums(codes.Rows, Config.DSae, 2, (r0, r1, acc) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var p = pre.Row(r);
                for (int e = codes.RowStart[r]; e < codes.RowStart[r + 1]; e++)
                {
                    int j = codes.Index[e];
                    dPre[e] = (float)EntryGradient(p[j], codes.Value[e], dF[e], j, th, st.Norms, opt, b, l0, tanh, preAct, acc[0], acc[1]);
                }
            }
        });
        var dTh = grads["threshold"].Span;
        for (int j = 0; j < dTh.Length; j++) dTh[j] += (float)sums[0][j];
        AddNormGradient(WDec, st.Norms, sums[1], grads["W_dec"]);
        SparseEncoderBackward(f, codes, dPre, grads["W_enc"], grads["b_enc"], grads["b_dec"]);
    }

    protected override void ScaleLatents(float[] s)
    {
        base.ScaleLatents(s);
        TensorPrimitives.Multiply(Threshold.Span, s, Threshold.Span);
    }
}
