using SaeSharp.Data;
using SaeSharp.Saes;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Bench;

/// <summary>
/// `saesharp bench train`: per architecture, the SAE's forward and forward+backward (all loss terms), and a full
/// training step (forward, backward, firing statistics' codes, clip, Adam), each with its ratio to one dense GEMM.
/// With a peer (<see cref="TrainPeer"/>), topk (with and without AuxK) and freshly initialised standard also run the
/// same step in PyTorch right after SaeSharp's, each side's step in its own GEMM units and the tokens/s ratio.
/// </summary>
public static class TrainBench
{
    /// <param name="architectures">Only these architectures (null: every registered one).</param>
    /// <param name="withPeer">Also time the peer's steps (PyTorch) where it has them.</param>
    public static int Run(TextWriter o, bool quick, IReadOnlyCollection<string>? architectures = null, bool withPeer = false)
    {
        foreach (var name in architectures ?? []) SaeRegistry.Get(name); // an unknown name is an error before any timing
        int B = quick ? 1024 : 4096, dIn = 512, dSae = quick ? 4096 : 16384, k = 32;
        // Best of five: on a shared VM single timings vary by ±10%.
        int repeats = quick ? 1 : 5;
        var all = Compute.All;
        var rng = new Rng(5);
        var x = Tensor.Uninitialized(B, dIn);
        rng.FillNormal(x.Span);
        var a = Tensor.Uninitialized(B, dIn); var w = Tensor.Uninitialized(dIn, dSae); var c = Tensor.Uninitialized(B, dSae);
        rng.FillNormal(a.Span); rng.FillNormal(w.Span);
        double gemm = BenchUtil.BestSeconds(() => Gemm.MatMul(a, w, c, compute: all), repeats);
        o.WriteLine($"training step, B={B}, d_in={dIn}, d_sae={dSae}, k={k}, {all.Threads} threads; one dense {B}x{dIn}x{dSae} GEMM: {BenchUtil.Ms(gemm).Trim()}");
        TrainPeer? peer = null;
        if (withPeer)
        {
            peer = TrainPeer.TryStart(all.Threads, out string why);
            o.WriteLine(peer is null ? why : $"peer: {peer.Description}, {all.Threads} threads; each step is timed right after SaeSharp's, in its own process with its own GEMM unit");
        }
        // Top-k kinds run twice: with no dead latents (the sparse path alone) and with one latent in seven dead, which
        // adds AuxK (k_aux = d_in/2 dead latents per row through the same sparse kernels).
        // standard, jumprelu and gated run twice too: freshly initialised (about half the latents fire, so every
        // product is dense) and with their encoder (gate) biases set so that `TrainedL0` latents fire per row, as in a
        // trained SAE, where they take the sparse-code path.
        const int TrainedL0 = 64, DeadEvery = 7;
        // Every architecture; top-k kinds also with dead latents (AuxK), penalised non-transcoder kinds also at a trained L0.
        var runs = SaeRegistry.Architectures.Where(a => architectures is null || architectures.Contains(a.Name)).SelectMany(a => new[] { (Kind: a, Dead: false, Trained: false) }
            .Concat(a.TopK ? [(a, true, false)] : [])
            .Concat(a.SparsityPenalty && !a.Transcoder ? [(a, false, true)] : []));
        foreach (var (kind, withDead, trained) in runs)
        {
            string arch = kind.Name;
            bool topK = kind.TopK;
            var sae = SaeRegistry.Create(new SaeConfig
            {
                Architecture = arch, DIn = dIn, DSae = dSae, K = topK ? k : 0,
                MatryoshkaWidths = kind.CfgKeys.Contains("matryoshka_widths") ? [dSae / 16, dSae / 4, dSae] : null,
                // Transcoders map d_in to d_out (here d_out = d_in, the batch standing in for the target) and take no b_dec shift.
                DOut = kind.Transcoder ? dIn : 0, ApplyBDecToInput = !kind.Transcoder,
            }, Compute.All);
            SaeTrainable.Initialize(sae, new Rng(1));
            if (trained) SetFiringRate(sae, x, (double)TrainedL0 / dSae);
            var trainable = new SaeTrainable(sae);
            var grads = sae.Params.ToDictionary(kv => kv.Key, kv => new Tensor(kv.Value.Shape.ToArray()));
            var adam = new Adam(trainable.Parameters);
            var dead = new bool[dSae];
            if (withDead) for (int j = 0; j < dSae; j += DeadEvery) dead[j] = true;
            var inputs = new StepInputs(topK ? 0 : 5, dead);
            // A transcoder's target is another tensor (the MLP output); here a copy of the batch.
            var target = kind.Transcoder ? x.Clone() : x;
            void Step()
            {
                trainable.ForwardBackward(x, target, inputs, grads);
                trainable.BeforeOptimizerStep(grads);
                Adam.ClipGradNorm(grads.Values, 1.0, all);
                adam.Update(trainable.Parameters, grads, 1e-4f, all);
                trainable.AfterOptimizerStep();
            }
            var loss = new SaeLossOptions { L1Coefficient = inputs.SparsityCoefficient, L0Coefficient = inputs.SparsityCoefficient, DeadMask = dead };
            double fwd = BenchUtil.BestSeconds(() => sae.Forward(x, target, loss), repeats);
            var gradParams = sae.Params.ZerosLike();
            double fwdBwd = BenchUtil.BestSeconds(() => { gradParams.Clear(all); sae.Backward(sae.Forward(x, target, loss), gradParams); }, repeats);
            double s = BenchUtil.BestSeconds(Step, repeats);
            // The GEMM unit again, right after this row's timings: a shared VM drifts by 10-30% over minutes, so each
            // row's ratios are to the GEMM measured beside them (the better of the two).
            double unit = Math.Min(gemm, BenchUtil.BestSeconds(() => Gemm.MatMul(a, w, c, compute: all), quick ? 1 : 2));
            string name = withDead ? arch + " +AuxK" : trained ? $"{arch} L0 {TrainedL0}" : arch;
            o.WriteLine($"  {name,-21} forward {BenchUtil.Ms(fwd)} ({fwd / unit,4:F2} GEMM)  forward+backward {BenchUtil.Ms(fwdBwd)} ({fwdBwd / unit,4:F2} GEMM)  " +
                        $"full step {BenchUtil.Ms(s)} {B / s,7:N0} tokens/s ({s / unit,4:F2} GEMM; GEMM {BenchUtil.Ms(unit).Trim()})");
            if (peer is not null && TrainPeer.Covers(arch) && !trained)
            {
                var (step, theirGemm) = peer.Time(arch, B, dIn, dSae, k, withDead ? DeadEvery : 0, repeats);
                o.WriteLine($"  {"",-21} PyTorch full step {BenchUtil.Ms(step)} {B / step,7:N0} tokens/s ({step / theirGemm,4:F2} GEMM; torch GEMM {BenchUtil.Ms(theirGemm).Trim()}); SaeSharp/PyTorch tokens/s {step / s,5:F2}");
            }
            gemm = BenchUtil.BestSeconds(() => Gemm.MatMul(a, w, c, compute: all), quick ? 1 : 2);
        }
        if (!quick && (architectures is null || architectures.Contains("standard"))) StandardTrainingRun(o, B, dIn, dSae, gemm);
        return 0;
    }

    /// <summary>
    /// A standard SAE trained from initialisation on activations with a known sparse structure (synthetic: the
    /// synth-sae-bench-16k generator in d_in dimensions), timing the whole run: its first steps are dense (about half
    /// the latents fire at initialisation) until the L1 penalty makes the codes sparse.
    /// </summary>
    private static void StandardTrainingRun(TextWriter o, int batch, int dIn, int dSae, double gemm)
    {
        const int Steps = 40, Batches = 8;
        const double L1 = 5;
        var cfg = SyntheticModel.Preset("synth-sae-bench-16k");
        cfg = cfg with { HiddenDim = dIn, Orthogonalize = cfg.Orthogonalize! with { Steps = 0 } };
        var (_, data) = SyntheticModel.Build(cfg, Compute.All).Sample(Batches * batch, new Rng(3), Compute.All);
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = dIn, DSae = dSae }, Compute.All);
        SaeTrainable.Initialize(sae, new Rng(4));
        string run = Directory.CreateTempSubdirectory("saesharp-bench-standard").FullName;
        try
        {
            var trainer = new Trainer(new SaeTrainable(sae), new InMemoryActivationSource(data, 5),
                new TrainerSettings { Steps = Steps, BatchSize = batch, L1Coefficient = L1, MetricsEvery = 1, CheckpointEvery = 0 }, run);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            trainer.Run();
            double seconds = sw.Elapsed.TotalSeconds;
            var l0 = File.ReadLines(trainer.MetricsPath)
                .Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement)
                .ToDictionary(m => m.GetProperty("step").GetInt64(), m => m.GetProperty("l0").GetDouble());
            o.WriteLine($"  standard, a {Steps}-step training run from initialisation (synthetic activations: {cfg.NumFeatures:N0} true features " +
                        $"in {dIn} dimensions, l1_coefficient {L1}): {Steps * batch / seconds:N0} tokens/s over the whole run " +
                        $"({seconds / Steps / gemm:F2} GEMM per step); L0 {l0[1]:N0} at step 1, {l0[5]:N0} at step 5, {l0[10]:N0} at step 10, {l0[Steps]:N0} at step {Steps}");
        }
        finally { Directory.Delete(run, recursive: true); }
    }

    // b_enc[j] (gated: b_gate[j]) = −(latent j's pre-activation at the given upper quantile over the batch): each
    // latent fires on that share of rows, so the mean L0 is rate·d_sae. (A fresh gated SAE's magnitude, its PreActs,
    // equals its gate pre-activation less b_gate: r_mag and b_mag start at 0.)
    private static void SetFiringRate(Sae sae, Tensor x, double rate)
    {
        var bEnc = sae.Params[sae.Config.Architecture == "gated" ? "b_gate" : "b_enc"];
        Ops.Clear(bEnc, sae.Compute);
        var pre = sae.Forward(x).PreActs;
        int keep = Math.Max(1, (int)Math.Round(rate * x.Rows));
        Compute.All.ForRange(bEnc.Length, 64, (j0, j1) =>
        {
            var column = new float[x.Rows];
            for (int j = j0; j < j1; j++)
            {
                for (int r = 0; r < x.Rows; r++) column[r] = pre[r, j];
                Array.Sort(column);
                bEnc.Span[j] = -column[x.Rows - keep - 1];
            }
        });
    }
}
