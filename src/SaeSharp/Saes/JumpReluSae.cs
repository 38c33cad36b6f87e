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
/// </summary>
public sealed class JumpReluSae : Sae
{
    public JumpReluSae(SaeConfig config) : base(config)
    {
        Params.Add("W_enc", new Tensor(config.DIn, config.DSae));
        Params.Add("b_enc", new Tensor(config.DSae));
        Params.Add("W_dec", new Tensor(config.DSae, config.DIn));
        Params.Add("b_dec", new Tensor(config.DIn));
        Params.Add("threshold", Tensor.Filled((float)config.JumpReluInitThreshold, config.DSae));
    }

    public Tensor Threshold => Params["threshold"];

    private sealed record State(Tensor MseGrad, float[] Norms);

    /// <summary>Rectangle kernel K(u) = 1 on (−½, ½).</summary>
    public static double Rectangle(double u) => u > -0.5 && u < 0.5 ? 1 : 0;

    protected override SaeForward ForwardCore(Tensor input, Tensor x, Tensor? target, ActivationNorm? norm, SaeLossOptions? loss)
    {
        var saeIn = ProcessInput(x);
        var pre = DenseEncode(saeIn, WEnc, Params["b_enc"].Span);
        var th = Threshold.Span.ToArray();
        var f = Tensor.Uninitialized(pre.Rows, pre.Cols);
        Compute.ForRange(pre.Rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var p = pre.Row(r); var o = f.Row(r);
                for (int j = 0; j < p.Length; j++) o[j] = p[j] > th[j] && p[j] > 0 ? p[j] : 0;
            }
        });
        var output = BiasRows(x.Rows);
        Gemm.MatMul(f, WDec, output, beta: 1, compute: Compute);
        var (mse, mseGrad) = ReconstructionLoss(output, target!, norm);
        var losses = new Dictionary<string, double> { ["mse_loss"] = mse };
        var norms = DecoderNorms(WDec);
        if (loss is not null)
        {
            int b = Math.Max(1, x.Rows);
            bool tanh = CheckMode(loss);
            bool[]? dead = loss.PreActLossCoefficient is not null && loss.DeadMask is { } d && d.Contains(true) ? d : null;
            if (dead is not null) CheckDead(dead);
            // Per-row sums in parallel, added in row order: the same totals for any thread count.
            var l0Rows = new double[x.Rows];
            var preActRows = new double[x.Rows];
            Compute.ForRange(x.Rows, 16, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    var p = pre.Row(r); var fr = f.Row(r);
                    double l0 = 0, pa = 0;
                    for (int j = 0; j < p.Length; j++)
                    {
                        l0 += tanh ? Math.Tanh(loss.JumpReluTanhScale * fr[j] * norms[j]) : (p[j] > th[j] ? 1 : 0);
                        if (dead is not null && dead[j]) pa += Math.Max(0.0, (double)th[j] - p[j]) * norms[j];
                    }
                    l0Rows[r] = l0; preActRows[r] = pa;
                }
            });
            losses["l0_loss"] = loss.L0Coefficient * l0Rows.Sum() / b;
            if (dead is not null) losses["pre_act_loss"] = loss.PreActLossCoefficient!.Value * preActRows.Sum() / b;
        }
        return new SaeForward
        {
            Input = input, Target = target, Norm = norm, SaeIn = saeIn, Output = output, PreActs = pre, Features = f, Options = loss,
            State = new State(mseGrad, norms),
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
        var feats = f.Features!; var pre = f.PreActs;
        var dWDec = grads["W_dec"]; var dTh = grads["threshold"].Span;
        var th = Threshold.Span;
        double eps = Config.JumpReluBandwidth;
        int b = Math.Max(1, feats.Rows);
        var dF = include("mse_loss") ? DenseDecoderBackward(feats, st.MseGrad, dWDec, grads["b_dec"]) : new Tensor(feats.Rows, Config.DSae);
        var dPre = Tensor.Uninitialized(feats.Rows, Config.DSae);
        var opt = f.Options;
        bool l0 = opt is not null && f.Losses.ContainsKey("l0_loss") && include("l0_loss");
        bool tanh = opt is not null && CheckMode(opt);
        bool preAct = f.Losses.ContainsKey("pre_act_loss") && include("pre_act_loss");
        var thArr = th.ToArray();
        // Rows in parallel blocks; the threshold, decoder-norm and encoder-bias gradients are column sums.
        var sums = RowBlockSums(feats.Rows, Config.DSae, 3, (r0, r1, acc) =>
        {
            double[] dThAcc = acc[0], dNorm = acc[1], dPreSum = acc[2];
            for (int r = r0; r < r1; r++)
            {
                var p = pre.Row(r); var fr = feats.Row(r); var dfr = dF.Row(r); var dpr = dPre.Row(r);
                for (int j = 0; j < p.Length; j++)
                {
                    double u = (p[j] - (double)thArr[j]) / eps;
                    double kern = Rectangle(u);
                    double df = dfr[j];
                    // tanh(a·f·‖W_dec‖) has slope a·‖W_dec‖ at f = 0 too: inactive latents still feed the threshold's STE.
                    if (l0 && tanh)
                    {
                        double a = opt!.JumpReluTanhScale, t = Math.Tanh(a * fr[j] * st.Norms[j]);
                        double c = opt.L0Coefficient / b * a * (1 - t * t);
                        df += c * st.Norms[j];
                        dNorm[j] += c * fr[j];
                    }
                    if (l0 && !tanh) dThAcc[j] += -opt!.L0Coefficient / b * kern / eps;
                    // JumpReLU: pass-through where active; threshold pseudo-gradient inside the kernel window.
                    double dp = fr[j] != 0 ? df : 0;
                    if (df != 0) dThAcc[j] += -(thArr[j] / eps) * kern * df;
                    if (preAct && opt!.DeadMask![j] && thArr[j] > p[j])
                    {
                        double c = opt.PreActLossCoefficient!.Value / b;
                        dp -= c * st.Norms[j];
                        dThAcc[j] += c * st.Norms[j];
                        dNorm[j] += c * ((double)thArr[j] - p[j]);
                    }
                    dpr[j] = (float)dp;
                    dPreSum[j] += dpr[j];
                }
            }
        });
        for (int j = 0; j < dTh.Length; j++) dTh[j] += (float)sums[0][j];
        AddNormGradient(WDec, st.Norms, sums[1], dWDec);
        DenseEncoderBackward(f, dPre, WEnc, grads["W_enc"], grads["b_enc"], grads["b_dec"], Array.ConvertAll(sums[2], v => (float)v));
    }

    protected override void ScaleLatents(float[] s)
    {
        base.ScaleLatents(s);
        TensorPrimitives.Multiply(Threshold.Span, s, Threshold.Span);
    }
}
