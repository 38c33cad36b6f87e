using System.Runtime.CompilerServices;
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
    public static SaeArchitecture Architecture { get; } = new()
    {
        Name = "gated", Create = (c, compute) => new GatedSae(c, compute), SparsityPenalty = true, SparseDensity = 0.05,
        TrainingKeys = ["l1_coefficient", "l1_warm_up_steps"],
    };

    public GatedSae(SaeConfig config, Compute compute) : base(config, compute)
    {
        Params.Add("W_enc", new Tensor(config.DIn, config.DSae));
        Params.Add("b_gate", new Tensor(config.DSae));
        Params.Add("r_mag", new Tensor(config.DSae));
        Params.Add("b_mag", new Tensor(config.DSae));
        Params.Add("W_dec", new Tensor(config.DSae, config.DIn));
        Params.Add("b_dec", new Tensor(config.DIn));
    }

    // SparseDensity counts open gates (π > 0), the only entries with a non-zero term: f, the L1 penalty and the via-gate
    // reconstruction all vanish elsewhere.

    // Codes: the open-gate entries with values f (the gated activation); GateValues: ReLU(π) on the same entries.
    private sealed record State(Tensor G, Tensor Gate, Tensor MseGrad, float[] Norms, Tensor? AuxGrad, float[]? GateValues);

    protected override SaeForward ForwardCore(Tensor input, Tensor x, Tensor? target, ActivationNorm? norm, SaeLossOptions? loss)
    {
        var saeIn = ProcessInput(x);
        var g = Gemm.MatMul(saeIn, WEnc, compute: Compute);
        var gate = Tensor.Uninitialized(g.Rows, g.Cols);
        var scale = new float[Config.DSae];
        TensorPrimitives.Exp(Params["r_mag"].Span, scale);
        var mag = Tensor.Uninitialized(g.Rows, g.Cols);
        var f = Tensor.Uninitialized(g.Rows, g.Cols);
        var bMag = Params["b_mag"].Span.ToArray();
        var bGate = Params["b_gate"].Span.ToArray();
        var open = new int[g.Rows];
        // π = g + b_gate, the magnitude path and f, and each row's open-gate count, in one pass over the lanes.
        Compute.ForRange(g.Rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
                open[r] = GateEntries(g.Row(r), bGate, scale, bMag, gate.Row(r), mag.Row(r), f.Row(r), Simd.Best);
        });
        SparseCodes? codes = null;
        float[]? gateValues = null;
        if (BelowDensity(open, g.Cols, SparseDensity)) (codes, gateValues) = OpenGates(gate, f, open);
        var output = DecodeLatents(f, codes);
        var (mse, mseGrad) = ReconstructionLoss(output, target!, norm);
        var losses = new Dictionary<string, double> { ["mse_loss"] = mse };
        var norms = DecoderNorms(WDec);
        Tensor? auxGrad = null;
        if (loss is not null)
        {
            // ReLU of the gate and each row's L1 term in one parallel pass; the rows' terms are added in order.
            var l1Rows = new double[gate.Rows];
            Tensor? gateAct = null;
            if (codes is null)
            {
                gateAct = Tensor.Uninitialized(gate.Rows, gate.Cols);
                Compute.ForRange(gate.Rows, 16, (r0, r1) =>
                {
                    for (int r = r0; r < r1; r++)
                    {
                        TensorPrimitives.Max(gate.Row(r), 0f, gateAct.Row(r));
                        l1Rows[r] = TensorPrimitives.Dot(gateAct.Row(r), norms);
                    }
                });
            }
            else
                for (int r = 0; r < gate.Rows; r++)
                {
                    double s = 0;
                    for (int e = codes.RowStart[r]; e < codes.RowStart[r + 1]; e++) s += gateValues![e] * norms[codes.Index[e]];
                    l1Rows[r] = s;
                }
            var via = DecodeLatents(gateAct, codes, gateValues);
            losses["l1_loss"] = loss.L1Coefficient * l1Rows.Sum() / Math.Max(1, x.Rows);
            // De-normalised like the output (SAELens compares the normalised-space via-gate reconstruction with the raw input).
            (losses["auxiliary_reconstruction_loss"], auxGrad) = ReconstructionLoss(via, target!, norm);
        }
        return new SaeForward
        {
            Input = input, Target = target, Norm = norm, SaeIn = saeIn, Output = output, PreActs = mag, Features = f, Codes = codes,
            Options = loss, State = new State(g, gate, mseGrad, norms, auxGrad, gateValues),
        }.WithLosses(losses);
    }

    public override void Backward(SaeForward f, SaeParams grads, Func<string, bool>? include = null)
    {
        include ??= _ => true;
        var st = (State)f.State!;
        if (f.Codes is not null) { SparseBackward(f, st, grads, include); return; }
        var feats = f.Features!; var mag = f.PreActs;
        var scale = new float[Config.DSae];
        TensorPrimitives.Exp(Params["r_mag"].Span, scale);
        var dG = Tensor.Uninitialized(feats.Rows, Config.DSae);
        int b = Math.Max(1, feats.Rows);
        Tensor? dF = include("mse_loss") ? DenseDecoderBackward(feats, st.MseGrad, grads["W_dec"], grads["b_dec"]) : null;
        bool l1 = f.Losses.ContainsKey("l1_loss") && include("l1_loss");
        Tensor? dVia = f.Losses.ContainsKey("auxiliary_reconstruction_loss") && include("auxiliary_reconstruction_loss")
            ? Gemm.MatMul(st.AuxGrad!, WDec, Compute, Trans.No, Trans.Yes) : null;
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
                if (dF is not null && dVia is not null)
                {
                    // The training case (both reconstructions): the same rule over vector lanes.
                    var loop = new GateBackwardLoop(gr, pr, fr, dfr, dvr, scale, st.Norms, (float)l1c, l1, dgr, acc);
                    Simd.Run(ref loop, Simd.Best);
                    continue;
                }
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

    /// <summary>
    /// One row's forward entries: π = g + b_gate, mag = g·exp(r_mag) + b_mag, f = (π &gt; 0 and mag &gt; 0) ? mag : 0;
    /// returns how many gates are open (π &gt; 0).
    /// </summary>
    internal static int GateEntries(ReadOnlySpan<float> g, ReadOnlySpan<float> bGate, ReadOnlySpan<float> scale, ReadOnlySpan<float> bMag,
        Span<float> gate, Span<float> mag, Span<float> f, SimdWidth width)
    {
        var loop = new GateForwardLoop(g, bGate, scale, bMag, gate, mag, f);
        Simd.Run(ref loop, width);
        return loop.Open;
    }

    private ref struct GateForwardLoop(ReadOnlySpan<float> g, ReadOnlySpan<float> bGate, ReadOnlySpan<float> scale, ReadOnlySpan<float> bMag,
        Span<float> gate, Span<float> mag, Span<float> f) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _g = g, _bGate = bGate, _scale = scale, _bMag = bMag;
        private readonly Span<float> _gate = gate, _mag = mag, _f = f;
        public int Open { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var g = _g; var gate = _gate; var mag = _mag; var f = _f;
            int open = 0;
            for (; j + T.Count <= g.Length; j += T.Count)
            {
                var gj = T.Load(g, j);
                var p = gj + T.Load(_bGate, j);
                var m = gj * T.Load(_scale, j) + T.Load(_bMag, j);
                var isOpen = T.GreaterThan(p, T.Zero);
                p.Store(gate, j);
                m.Store(mag, j);
                (m & (isOpen & T.GreaterThan(m, T.Zero))).Store(f, j);
                open += System.Numerics.BitOperations.PopCount(T.Bits(isOpen));
            }
            Open += open;
            return j;
        }
    }

    /// <summary>
    /// The dense backward's per-entry rule with both reconstructions' gradients (dL/df and the via-gate one): dG and the
    /// five per-latent sums (r_mag, b_mag, b_gate, the decoder norms, dG's column sums) into float64 accumulators.
    /// </summary>
    private readonly ref struct GateBackwardLoop(ReadOnlySpan<float> g, ReadOnlySpan<float> gate, ReadOnlySpan<float> f, ReadOnlySpan<float> dF,
        ReadOnlySpan<float> dVia, ReadOnlySpan<float> scale, ReadOnlySpan<float> norms, float l1PerRow, bool l1, Span<float> dG, double[][] acc) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _g = g, _gate = gate, _f = f, _dF = dF, _dVia = dVia, _scale = scale, _norms = norms;
        private readonly Span<float> _dG = dG;
        private readonly Span<double> _dRMag = acc[0], _dBMag = acc[1], _dBGate = acc[2], _dNorm = acc[3], _dGSum = acc[4];
        private readonly float _l1 = l1PerRow;
        private readonly bool _withL1 = l1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var g = _g; var dG = _dG;
            var l1c = T.Create(_l1);
            for (; j + T.Count <= g.Length; j += T.Count)
            {
                var sc = T.Load(_scale, j);
                // Through f where it fired: dm = dL/df.
                var dm = T.Load(_dF, j) & ~T.EqualTo(T.Load(_f, j), T.Zero);
                // Through the open gates: the L1 term and the via-gate reconstruction.
                var p = T.Load(_gate, j);
                var isOpen = T.GreaterThan(p, T.Zero);
                var dGate = (l1c * T.Load(_norms, j) + T.Load(_dVia, j)) & isOpen;
                var dg = dm * sc + dGate;
                dg.Store(dG, j);
                (dm * T.Load(g, j) * sc).AddWidenedTo(_dRMag, j);
                dm.AddWidenedTo(_dBMag, j);
                dGate.AddWidenedTo(_dBGate, j);
                if (_withL1) ((l1c * p) & isOpen).AddWidenedTo(_dNorm, j);
                dg.AddWidenedTo(_dGSum, j);
            }
            return j;
        }
    }

    // The open-gate entries, ascending per row, with f and ReLU(π) as values.
    private (SparseCodes, float[]) OpenGates(Tensor gate, Tensor f, int[] open)
    {
        var codes = SparseCodes.FromRowCounts(gate.Cols, open);
        var gateValues = codes.NewValues();
        Compute.ForRange(gate.Rows, 16, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var pr = gate.Row(r); var fr = f.Row(r);
                int w = codes.RowStart[r];
                for (int j = 0; j < pr.Length; j++)
                    if (pr[j] > 0) { codes.Index[w] = j; codes.Value[w] = fr[j]; gateValues[w++] = pr[j]; }
            }
        });
        return (codes, gateValues);
    }

    // The backward of the sparse forward, entry by entry over the open gates with the dense path's rule.
    private void SparseBackward(SaeForward f, State st, SaeParams grads, Func<string, bool> include)
    {
        var codes = f.Codes!;
        var scale = new float[Config.DSae];
        TensorPrimitives.Exp(Params["r_mag"].Span, scale);
        int b = Math.Max(1, codes.Rows);
        float[]? dF = include("mse_loss") ? SparseDecoderBackward(codes, codes.Value, st.MseGrad, grads["W_dec"], grads["b_dec"]) : null;
        float[]? dVia = null;
        if (f.Losses.ContainsKey("auxiliary_reconstruction_loss") && include("auxiliary_reconstruction_loss"))
        {
            dVia = codes.NewValues();
            SparseKernels.GatherDot(codes, st.AuxGrad!, WDec, dVia, Compute);
        }
        bool l1 = f.Losses.ContainsKey("l1_loss") && include("l1_loss");
        double l1c = l1 ? f.Options!.L1Coefficient / b : 0;
        var dG = codes.NewValues();
        var sums = RowBlockSums(codes.Rows, Config.DSae, 4, (r0, r1, acc) =>
        {
            double[] dRMag = acc[0], dBMag = acc[1], dBGate = acc[2], dNorm = acc[3];
            for (int r = r0; r < r1; r++)
            {
                var gr = st.G.Row(r);
                for (int e = codes.RowStart[r]; e < codes.RowStart[r + 1]; e++)
                {
                    int j = codes.Index[e];
                    double dg = 0;
                    if (dF is not null && codes.Value[e] != 0)
                    {
                        double dm = dF[e];
                        dg += dm * scale[j];
                        dRMag[j] += dm * gr[j] * scale[j];
                        dBMag[j] += dm;
                    }
                    // Every entry here has an open gate.
                    double dGate = l1c * st.Norms[j] + (dVia is null ? 0 : dVia[e]);
                    if (l1) dNorm[j] += l1c * st.GateValues![e];
                    dg += dGate;
                    dBGate[j] += dGate;
                    dG[e] = (float)dg;
                }
            }
        });
        Add(grads["r_mag"], sums[0]); Add(grads["b_mag"], sums[1]); Add(grads["b_gate"], sums[2]);
        AddNormGradient(WDec, st.Norms, sums[3], grads["W_dec"]);
        SparseEncoderBackward(f, codes, dG, grads["W_enc"], new Tensor(Config.DSae), grads["b_dec"]);
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
