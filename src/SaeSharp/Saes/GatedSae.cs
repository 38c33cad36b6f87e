using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>
/// SAELens "gated": G = (x − b_dec)·W_enc; gate π = G + b_gate; magnitude m = G·exp(r_mag) + b_mag;
/// f = [π &gt; 0]·ReLU(m); x̂ = f·W_dec + b_dec (no b_enc). Losses: mse_loss; l1_loss = l1_coefficient·
/// mean_b Σ ReLU(π)·‖W_dec[j]‖; auxiliary_reconstruction_loss = mean_b Σ_d (ReLU(π)·W_dec + b_dec − x)² with the
/// decoder detached (no gradient to W_dec, b_dec through it). With activation normalisation the via-gate
/// reconstruction is de-normalised like the output before it is compared with the raw input.
/// </summary>
public sealed class GatedSae : Sae
{
    public GatedSae(SaeConfig config) : base(config)
    {
        Params.Add("W_enc", new Tensor(config.DIn, config.DSae));
        Params.Add("b_gate", new Tensor(config.DSae));
        Params.Add("r_mag", new Tensor(config.DSae));
        Params.Add("b_mag", new Tensor(config.DSae));
        Params.Add("W_dec", new Tensor(config.DSae, config.DIn));
        Params.Add("b_dec", new Tensor(config.DIn));
    }

    private sealed record State(Tensor G, Tensor Gate, Tensor MseGrad, float[] Norms, Tensor? AuxGrad);

    protected override SaeForward ForwardCore(Tensor input, Tensor x, Tensor? target, ActivationNorm? norm, SaeLossOptions? loss)
    {
        var saeIn = ProcessInput(x);
        var g = Gemm.MatMul(saeIn, WEnc, compute: Compute);
        var gate = g.Clone();
        Ops.AddRowVector(gate, Params["b_gate"].Span);
        var scale = new float[Config.DSae];
        TensorPrimitives.Exp(Params["r_mag"].Span, scale);
        var mag = Tensor.Uninitialized(g.Rows, g.Cols);
        var f = Tensor.Uninitialized(g.Rows, g.Cols);
        var bMag = Params["b_mag"].Span.ToArray();
        Compute.ForRange(g.Rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var gr = g.Row(r); var mr = mag.Row(r); var fr = f.Row(r); var pr = gate.Row(r);
                for (int j = 0; j < gr.Length; j++)
                {
                    mr[j] = gr[j] * scale[j] + bMag[j];
                    fr[j] = pr[j] > 0 && mr[j] > 0 ? mr[j] : 0;
                }
            }
        });
        var output = BiasRows(x.Rows);
        Gemm.MatMul(f, WDec, output, beta: 1, compute: Compute);
        var (mse, mseGrad) = ReconstructionLoss(output, target!, norm);
        var losses = new Dictionary<string, double> { ["mse_loss"] = mse };
        var norms = DecoderNorms(WDec);
        Tensor? auxGrad = null;
        if (loss is not null)
        {
            // ReLU of the gate and each row's L1 term in one parallel pass; the rows' terms are added in order.
            var gateAct = Tensor.Uninitialized(gate.Rows, gate.Cols);
            var l1Rows = new double[gate.Rows];
            Compute.ForRange(gate.Rows, 16, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    TensorPrimitives.Max(gate.Row(r), 0f, gateAct.Row(r));
                    l1Rows[r] = TensorPrimitives.Dot(gateAct.Row(r), norms);
                }
            });
            losses["l1_loss"] = loss.L1Coefficient * l1Rows.Sum() / Math.Max(1, x.Rows);
            var via = BiasRows(x.Rows);
            Gemm.MatMul(gateAct, WDec, via, beta: 1, compute: Compute);
            // De-normalised like the output (SAELens compares the normalised-space via-gate reconstruction with the raw input).
            (losses["auxiliary_reconstruction_loss"], auxGrad) = ReconstructionLoss(via, target!, norm);
        }
        return new SaeForward
        {
            Input = input, Target = target, Norm = norm, SaeIn = saeIn, Output = output, PreActs = mag, Features = f, Options = loss,
            State = new State(g, gate, mseGrad, norms, auxGrad),
        }.WithLosses(losses);
    }

    public override void Backward(SaeForward f, SaeParams grads, Func<string, bool>? include = null)
    {
        include ??= _ => true;
        var st = (State)f.State!;
        var feats = f.Features!; var mag = f.PreActs;
        var scale = new float[Config.DSae];
        TensorPrimitives.Exp(Params["r_mag"].Span, scale);
        var dG = Tensor.Uninitialized(feats.Rows, Config.DSae);
        int b = Math.Max(1, feats.Rows);
        Tensor? dF = include("mse_loss") ? DenseDecoderBackward(feats, st.MseGrad, grads["W_dec"], grads["b_dec"]) : null;
        bool l1 = f.Losses.ContainsKey("l1_loss") && include("l1_loss");
        Tensor? dVia = f.Losses.ContainsKey("auxiliary_reconstruction_loss") && include("auxiliary_reconstruction_loss")
            ? Gemm.MatMul(st.AuxGrad!, WDec, Trans.No, Trans.Yes, Compute) : null;
        double l1c = l1 ? f.Options!.L1Coefficient / b : 0;
        // Rows in parallel blocks; the per-latent gradients (r_mag, b_mag, b_gate, the decoder norms and the column
        // sums of dG for b_dec) are thread-independent column sums.
        var sums = RowBlockSums(feats.Rows, Config.DSae, 5, (r0, r1, acc) =>
        {
            double[] dRMag = acc[0], dBMag = acc[1], dBGate = acc[2], dNorm = acc[3], dGSum = acc[4];
            for (int r = r0; r < r1; r++)
            {
                var gr = st.G.Row(r); var pr = st.Gate.Row(r); var fr = feats.Row(r); var dgr = dG.Row(r);
                var dfr = dF is null ? default : dF.Row(r);
                var dvr = dVia is null ? default : dVia.Row(r);
                for (int j = 0; j < gr.Length; j++)
                {
                    double dg = 0;
                    if (dF is not null && fr[j] != 0)
                    {
                        double dm = dfr[j];
                        dg += dm * scale[j];
                        dRMag[j] += dm * gr[j] * scale[j];
                        dBMag[j] += dm;
                    }
                    if (pr[j] > 0)
                    {
                        double dGate = l1c * st.Norms[j] + (dVia is null ? 0 : dvr[j]);
                        if (l1) dNorm[j] += l1c * pr[j];
                        dg += dGate;
                        dBGate[j] += dGate;
                    }
                    dgr[j] = (float)dg;
                    dGSum[j] += dgr[j];
                }
            }
        });
        Add(grads["r_mag"], sums[0]); Add(grads["b_mag"], sums[1]); Add(grads["b_gate"], sums[2]);
        AddNormGradient(WDec, st.Norms, sums[3], grads["W_dec"]);
        var scratch = new Tensor(Config.DSae);
        DenseEncoderBackward(f, dG, WEnc, grads["W_enc"], scratch, grads["b_dec"], Array.ConvertAll(sums[4], v => (float)v));
    }

    private static void Add(Tensor t, double[] v) { var s = t.Span; for (int i = 0; i < v.Length; i++) s[i] += (float)v[i]; }

    protected override void ScaleLatents(float[] s)
    {
        // Gate and magnitude share W_enc: scale it and both biases; r_mag is unchanged.
        var w = WEnc;
        for (int i = 0; i < w.Rows; i++) TensorPrimitives.Multiply(w.Row(i), s, w.Row(i));
        TensorPrimitives.Multiply(Params["b_gate"].Span, s, Params["b_gate"].Span);
        TensorPrimitives.Multiply(Params["b_mag"].Span, s, Params["b_mag"].Span);
    }
}
