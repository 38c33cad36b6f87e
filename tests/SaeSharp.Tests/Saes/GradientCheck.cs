using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Saes;

/// <summary>
/// Shared helpers of the SAE tests: independent float64 re-implementations of every architecture's losses
/// (<see cref="Ref"/>), the finite-difference gradient check against them (<see cref="Check"/>), random and
/// hand-picked SAEs and inputs, and the dense-versus-sparse path agreement check.
/// </summary>
public static class GradientCheck
{
    // Parameters as float64 copies keyed by name; the reference losses read them, FD perturbs them.
    public sealed class P(Dictionary<string, double[]> v, Dictionary<string, int[]> shape)
    {
        public Dictionary<string, double[]> V { get; } = v;
        public Dictionary<string, int[]> Shape { get; } = shape;
        public double this[string n, int i] => V[n][i];
        public double this[string n, int i, int j] => V[n][i * Shape[n][1] + j];
        public P Copy() => new(V.ToDictionary(kv => kv.Key, kv => (double[])kv.Value.Clone()), Shape);
        public static P Of(Sae sae) => new(
            sae.Params.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray().Select(f => (double)f).ToArray()),
            sae.Params.ToDictionary(kv => kv.Key, kv => kv.Value.Shape.ToArray()));
    }

    /// <summary>Straightforward float64 loops for each architecture's losses, written from the SAELens formulas.</summary>
    public static class Ref
    {
        public static double[,] SaeIn(P p, double[,] x, bool applyBDec)
        {
            int b = x.GetLength(0), d = x.GetLength(1);
            var s = new double[b, d];
            for (int r = 0; r < b; r++) for (int i = 0; i < d; i++) s[r, i] = x[r, i] - (applyBDec ? p["b_dec", i] : 0);
            return s;
        }

        public static double[,] Linear(double[,] a, P p, string w, string? bias, double[]? colScale = null)
        {
            int b = a.GetLength(0), din = a.GetLength(1), n = p.Shape[w][1];
            var o = new double[b, n];
            for (int r = 0; r < b; r++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int i = 0; i < din; i++) s += a[r, i] * p[w, i, j] * (colScale?[j] ?? 1);
                    o[r, j] = s + (bias is null ? 0 : p[bias, j]);
                }
            return o;
        }

        public static double[,] Decode(double[,] f, P p, bool bias)
        {
            int b = f.GetLength(0), ds = f.GetLength(1), d = p.Shape["W_dec"][1];
            var o = new double[b, d];
            for (int r = 0; r < b; r++)
                for (int i = 0; i < d; i++)
                {
                    double s = bias ? p["b_dec", i] : 0;
                    for (int j = 0; j < ds; j++) s += f[r, j] * p["W_dec", j, i];
                    o[r, i] = s;
                }
            return o;
        }

        public static double Mse(double[,] a, double[,] b)
        {
            double s = 0;
            for (int r = 0; r < a.GetLength(0); r++) for (int i = 0; i < a.GetLength(1); i++) s += (a[r, i] - b[r, i]) * (a[r, i] - b[r, i]);
            return s / a.GetLength(0);
        }

        public static double[] Norms(P p)
        {
            int ds = p.Shape["W_dec"][0], d = p.Shape["W_dec"][1];
            var n = new double[ds];
            for (int j = 0; j < ds; j++) { double s = 0; for (int i = 0; i < d; i++) s += p["W_dec", j, i] * p["W_dec", j, i]; n[j] = Math.Sqrt(s); }
            return n;
        }

        /// <summary>SAELens run_time_activation_norm_fn_in: the normalised rows and the per-row (outScale, shift) that undo it.</summary>
        public static (double[,] Xn, double[] OutScale, double[] Shift) NormIn(double[,] x, string mode)
        {
            int b = x.GetLength(0), d = x.GetLength(1);
            var xn = (double[,])x.Clone();
            var so = Enumerable.Repeat(1.0, b).ToArray();
            var sh = new double[b];
            for (int r = 0; r < b; r++)
            {
                double sIn = 1;
                if (mode == "constant_norm_rescale")
                {
                    double n = 0; for (int i = 0; i < d; i++) n += x[r, i] * x[r, i];
                    sIn = so[r] = Math.Sqrt(n) / Math.Sqrt(d);
                }
                else if (mode == "layer_norm")
                {
                    double m = 0; for (int i = 0; i < d; i++) m += x[r, i] / d;
                    double v = 0; for (int i = 0; i < d; i++) v += (x[r, i] - m) * (x[r, i] - m) / (d - 1);
                    sh[r] = m; so[r] = Math.Sqrt(v); sIn = so[r] + 1e-5;
                }
                for (int i = 0; i < d; i++) xn[r, i] = (x[r, i] - sh[r]) / sIn;
            }
            return (xn, so, sh);
        }

        /// <summary>run_time_activation_norm_fn_out: y·outScale + shift per row.</summary>
        public static double[,] NormOut(double[,] y, double[] so, double[] sh)
        {
            var o = (double[,])y.Clone();
            for (int r = 0; r < o.GetLength(0); r++) for (int i = 0; i < o.GetLength(1); i++) o[r, i] = y[r, i] * so[r] + sh[r];
            return o;
        }

        public static Dictionary<string, double> Standard(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
        {
            var (xn, so, sh) = NormIn(x, c.NormalizeActivations);
            var pre = Linear(SaeIn(p, xn, c.ApplyBDecToInput), p, "W_enc", "b_enc");
            int b = pre.GetLength(0), ds = pre.GetLength(1);
            var f = new double[b, ds];
            for (int r = 0; r < b; r++) for (int j = 0; j < ds; j++) f[r, j] = Math.Max(0, pre[r, j]);
            var n = Norms(p);
            double l1 = 0;
            for (int r = 0; r < b; r++)
            {
                double s = 0;
                for (int j = 0; j < ds; j++) s += Math.Pow(Math.Abs(f[r, j] * n[j]), o.LpNorm);
                l1 += Math.Pow(s, 1 / o.LpNorm);
            }
            return new() { ["mse_loss"] = Mse(NormOut(Decode(f, p, true), so, sh), x), ["l1_loss"] = o.L1Coefficient * l1 / b };
        }

        // Top-k codes: selection by (pre·norm if rescaling), decoded value ReLU(pre).
        internal static double[,] TopKActs(P p, double[,] pre, SaeConfig c)
        {
            int b = pre.GetLength(0), ds = pre.GetLength(1);
            var n = c.RescaleActsByDecoderNorm ? Norms(p) : Enumerable.Repeat(1.0, ds).ToArray();
            var f = new double[b, ds];
            if (c.Architecture == "topk")
            {
                for (int r = 0; r < b; r++)
                    foreach (int j in Enumerable.Range(0, ds).OrderByDescending(j => pre[r, j] * n[j]).Take(c.K))
                        f[r, j] = Math.Max(0, pre[r, j]);
            }
            else
            {
                foreach (int e in Enumerable.Range(0, b * ds).Where(e => pre[e / ds, e % ds] > 0)
                             .OrderByDescending(e => pre[e / ds, e % ds] * n[e % ds]).Take(c.K * b))
                    f[e / ds, e % ds] = pre[e / ds, e % ds];
            }
            return f;
        }

        public static Dictionary<string, double> TopK(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
        {
            var (xn, so, sh) = NormIn(x, c.NormalizeActivations);
            var pre = Linear(SaeIn(p, xn, c.ApplyBDecToInput), p, "W_enc", "b_enc");
            var outp = NormOut(Decode(TopKActs(p, pre, c), p, true), so, sh);
            var res = new Dictionary<string, double> { ["mse_loss"] = Mse(outp, x) };
            var dead = o.DeadMask!;
            int nDead = dead.Count(d => d), kAux = c.DIn / 2;
            double scale = Math.Min((double)nDead / kAux, 1);
            kAux = Math.Min(kAux, nDead);
            // residual is detached: computed from the unperturbed parameters
            var pre0 = Linear(SaeIn(p0, xn, c.ApplyBDecToInput), p0, "W_enc", "b_enc");
            var out0 = NormOut(Decode(TopKActs(p0, pre0, c), p0, true), so, sh);
            int b = pre.GetLength(0), ds = pre.GetLength(1);
            var aux = new double[b, ds];
            var resid = new double[b, c.DIn];
            for (int r = 0; r < b; r++)
            {
                foreach (int j in Enumerable.Range(0, ds).Where(j => dead[j]).OrderByDescending(j => pre0[r, j]).Take(kAux))
                    aux[r, j] = pre[r, j];
                for (int i = 0; i < c.DIn; i++) resid[r, i] = x[r, i] - out0[r, i];
            }
            // With a normalisation the aux reconstruction is scaled back like the output, without the shift (a residual).
            res["auxiliary_reconstruction_loss"] = o.AuxKCoefficient * scale * Mse(NormOut(Decode(aux, p, false), so, new double[b]), resid);
            return res;
        }

        public static Dictionary<string, double> JumpRelu(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
        {
            var (xn, so, sh) = NormIn(x, c.NormalizeActivations);
            var pre = Linear(SaeIn(p, xn, c.ApplyBDecToInput), p, "W_enc", "b_enc");
            int b = pre.GetLength(0), ds = pre.GetLength(1);
            var f = new double[b, ds];
            var n = Norms(p);
            double l0 = 0, pa = 0;
            for (int r = 0; r < b; r++)
                for (int j = 0; j < ds; j++)
                {
                    double th = p["threshold", j];
                    f[r, j] = pre[r, j] > th && pre[r, j] > 0 ? pre[r, j] : 0;
                    l0 += o.JumpReluSparsityMode == "tanh" ? Math.Tanh(o.JumpReluTanhScale * f[r, j] * n[j]) : (pre[r, j] > th ? 1 : 0);
                    if (o.DeadMask![j]) pa += Math.Max(0, th - pre[r, j]) * n[j];
                }
            return new()
            {
                ["mse_loss"] = Mse(NormOut(Decode(f, p, true), so, sh), x),
                ["l0_loss"] = o.L0Coefficient * l0 / b,
                ["pre_act_loss"] = o.PreActLossCoefficient!.Value * pa / b,
            };
        }

        public static Dictionary<string, double> Gated(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
        {
            var (xn, so, sh) = NormIn(x, c.NormalizeActivations);
            var sIn = SaeIn(p, xn, c.ApplyBDecToInput);
            var gate = Linear(sIn, p, "W_enc", "b_gate");
            var mag = Linear(sIn, p, "W_enc", "b_mag", p.V["r_mag"].Select(Math.Exp).ToArray());
            int b = gate.GetLength(0), ds = gate.GetLength(1);
            var f = new double[b, ds];
            var ga = new double[b, ds];
            var n = Norms(p);
            double l1 = 0;
            for (int r = 0; r < b; r++)
                for (int j = 0; j < ds; j++)
                {
                    f[r, j] = gate[r, j] > 0 ? Math.Max(0, mag[r, j]) : 0;
                    ga[r, j] = Math.Max(0, gate[r, j]);
                    l1 += ga[r, j] * n[j];
                }
            return new()
            {
                ["mse_loss"] = Mse(NormOut(Decode(f, p, true), so, sh), x),
                ["l1_loss"] = o.L1Coefficient * l1 / b,
                ["auxiliary_reconstruction_loss"] = Mse(NormOut(Decode(ga, p0, true), so, sh), x), // decoder detached
            };
        }

        /// <summary>The batchtopk reference plus inner_mse_loss_{w}: the reconstruction from latents below each proper prefix width.</summary>
        public static Dictionary<string, double> Matryoshka(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o)
        {
            var res = TopK(p, p0, x, c, o);
            var (xn, so, sh) = NormIn(x, c.NormalizeActivations);
            var pre = Linear(SaeIn(p, xn, c.ApplyBDecToInput), p, "W_enc", "b_enc");
            var f = TopKActs(p, pre, c);
            foreach (int w in c.MatryoshkaWidths!.SkipLast(1))
            {
                var fw = (double[,])f.Clone();
                for (int r = 0; r < fw.GetLength(0); r++) for (int j = w; j < fw.GetLength(1); j++) fw[r, j] = 0;
                res[$"inner_mse_loss_{w}"] = Mse(NormOut(Decode(fw, p, true), so, sh), x);
            }
            return res;
        }

        /// <summary>Transcoder losses against a separate target: ReLU(x·W_enc + b_enc)·W_dec + b_dec (+ x·W_skipᵀ).</summary>
        public static Dictionary<string, double> Transcoder(P p, double[,] x, double[,] target, SaeLossOptions o)
        {
            var pre = Linear(x, p, "W_enc", "b_enc");
            int b = pre.GetLength(0), ds = pre.GetLength(1);
            var f = new double[b, ds];
            for (int r = 0; r < b; r++) for (int j = 0; j < ds; j++) f[r, j] = Math.Max(0, pre[r, j]);
            var outp = Decode(f, p, true);
            if (p.V.ContainsKey("W_skip"))
            {
                int dOut = p.Shape["W_skip"][0], dIn = p.Shape["W_skip"][1];
                for (int r = 0; r < b; r++)
                    for (int k = 0; k < dOut; k++)
                        for (int i = 0; i < dIn; i++) outp[r, k] += x[r, i] * p["W_skip", k, i];
            }
            var n = Norms(p);
            double l1 = 0;
            for (int r = 0; r < b; r++) for (int j = 0; j < ds; j++) l1 += f[r, j] * n[j];
            return new() { ["mse_loss"] = Mse(outp, target), ["l1_loss"] = o.L1Coefficient * l1 / b };
        }
    }

    public delegate Dictionary<string, double> RefLoss(P p, P p0, double[,] x, SaeConfig c, SaeLossOptions o);

    public static Sae RandomSae(SaeConfig cfg, ulong seed, float encStd = 0.5f)
    {
        var sae = SaeRegistry.Create(cfg, Compute.All);
        var rng = new Rng(seed);
        foreach (var (name, t) in sae.Params)
        {
            if (name == "threshold") continue;
            rng.FillNormal(t.Span, 0, name.StartsWith('W') ? encStd : 0.3f);
        }
        return sae;
    }

    public static Tensor RandomX(int b, int d, ulong seed)
    {
        var x = new Tensor(b, d);
        new Rng(seed).FillNormal(x.Span);
        return x;
    }

    internal static double[,] ToArray2(Tensor x)
    {
        var a = new double[x.Rows, x.Cols];
        for (int r = 0; r < x.Rows; r++) for (int i = 0; i < x.Cols; i++) a[r, i] = x[r, i];
        return a;
    }

    /// <summary>
    /// Checks forward loss values against the reference (float32 forward vs float64: relative 1e-5) and each
    /// term's gradient against central differences (h = 1e-5 in float64 on the float64 copy of the parameters;
    /// the losses are piecewise polynomial or smooth, so the FD error is ~1e-10). The analytic gradient is float32
    /// with sums of at most B·d ≲ 100 products, so its rounding error is ≲ 100·6e-8 of the largest term: we
    /// allow 2e-4 of the parameter's largest gradient entry, far below any real mistake (a dropped term or a
    /// wrong factor changes entries by O(1) of that scale).
    /// </summary>
    internal static void Check(Sae sae, Tensor x, SaeLossOptions opt, RefLoss refLoss, string[]? skipParams = null, string[]? pseudoOnlyTerms = null,
        Tensor? target = null)
    {
        var fwd = sae.Forward(x, target, opt);
        var p0 = P.Of(sae);
        var xa = ToArray2(x);
        var refVals = refLoss(p0, p0, xa, sae.Config, opt);
        foreach (var (term, v) in fwd.Losses)
            Assert.True(Math.Abs(v - refVals[term]) <= 1e-5 * Math.Max(1, Math.Abs(v)), $"{term}: forward {v} vs reference {refVals[term]}");
        Assert.True(fwd.Losses.Count > 1, "expected more than the reconstruction loss");
        foreach (var term in fwd.Losses.Keys)
        {
            var grads = sae.Params.ZerosLike();
            sae.Backward(fwd, grads, t => t == term);
            double totalFd = 0;
            foreach (var (name, g) in grads)
            {
                if (skipParams?.Contains(name) == true) continue;
                var fd = new double[g.Length];
                for (int i = 0; i < g.Length; i++)
                {
                    const double h = 1e-5;
                    var pp = p0.Copy(); pp.V[name][i] += h;
                    var pm = p0.Copy(); pm.V[name][i] -= h;
                    fd[i] = (refLoss(pp, p0, xa, sae.Config, opt)[term] - refLoss(pm, p0, xa, sae.Config, opt)[term]) / (2 * h);
                }
                double scale = fd.Max(Math.Abs);
                totalFd += scale;
                for (int i = 0; i < g.Length; i++)
                    Assert.True(Math.Abs(g.Span[i] - fd[i]) <= 2e-4 * scale + 1e-9,
                        $"{sae.Config.Architecture} d{term}/d{name}[{i}]: analytic {g.Span[i]} vs FD {fd[i]} (scale {scale})");
            }
            Assert.True(totalFd > 0 || pseudoOnlyTerms?.Contains(term) == true, $"{term}: every finite difference was zero; the check would prove nothing");
        }
    }

    internal static SaeConfig Cfg(string arch, int k = 0, bool applyBDec = true, bool rescale = false) =>
        new() { Architecture = arch, DIn = 6, DSae = 10, K = k, ApplyBDecToInput = applyBDec, RescaleActsByDecoderNorm = rescale };

    /// <summary>
    /// Forward and backward with the sparse-code path off (density 0) and forced (1): the paths are the ones asked
    /// for, and the outputs and every gradient agree. Returns both forwards for loss checks.
    /// </summary>
    internal static (SaeForward Dense, SaeForward Sparse) DenseAndSparseAgree(Sae sae, Action<double> setDensity, Tensor x, SaeLossOptions opt)
    {
        setDensity(0);
        var (fd, gd) = ForwardBackward(sae, x, opt);
        setDensity(1);
        var (fs, gs) = ForwardBackward(sae, x, opt);
        Assert.Null(fd.Codes);
        Assert.NotNull(fs.Codes);
        AssertClose(fd.Output.ToArray(), fs.Output.ToArray(), "output");
        foreach (var name in sae.Params.Names)
        {
            AssertClose(gd[name].ToArray(), gs[name].ToArray(), name);
            Assert.Contains(gs[name].ToArray(), v => v != 0);
        }
        return (fd, fs);
    }

    // Column j's second-largest value: with 67 rows, a cut that lets one row in 67 (1.5%) through, a trained SAE's sparsity.
    internal static float SecondLargestInColumn(Tensor m, int j) =>
        Enumerable.Range(0, m.Rows).Select(r => m[r, j]).OrderByDescending(v => v).ElementAt(1);

    internal static (SaeForward F, SaeParams G) ForwardBackward(Sae sae, Tensor x, SaeLossOptions opt)
    {
        var f = sae.Forward(x, opt);
        var g = sae.Params.ZerosLike();
        sae.Backward(f, g);
        return (f, g);
    }

    internal static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        float scale = expected.Max(Math.Abs) + 1e-12f;
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * scale, $"{what}[{i}]: dense {expected[i]}, sparse {actual[i]}");
    }

    // Small fixtures and asserts of the hand-computed cases.
    internal static void Set(Tensor t, params float[] v) => v.CopyTo(t.Span);

    internal static void Near(double expected, double actual, double tol = 1e-6) =>
        Assert.True(Math.Abs(expected - actual) <= tol * Math.Max(1, Math.Abs(expected)), $"expected {expected}, got {actual}");

    internal static void Near(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Near(expected[i], actual[i]);
    }

    // d_in = 2, d_sae = 3: W_enc columns e0, e1, e0 − e1; b_enc = [0, 0, 0.1];
    // W_dec rows [2, 0], [0, 1], [0.5, 0] (norms 2, 1, 0.5); b_dec = [0.5, 0].
    // x row 0 = [1.5, 0.25] → sae_in [1, 0.25] → pre [1, 0.25, 0.85];
    // x row 1 = [0.5, 1]    → sae_in [0, 1]    → pre [0, 1, −0.9].
    internal static T Tiny<T>(SaeConfig cfg) where T : Sae
    {
        var sae = (T)SaeRegistry.Create(cfg, Compute.All);
        Set(sae.WEnc, 1, 0, 1, 0, 1, -1);
        Set(sae.Params["b_enc"], 0, 0, 0.1f);
        Set(sae.WDec, 2, 0, 0, 1, 0.5f, 0);
        Set(sae.BDec, 0.5f, 0);
        return sae;
    }

    internal static Tensor TinyX() => Tensor.FromArray([1.5f, 0.25f, 0.5f, 1f], 2, 2);
}
