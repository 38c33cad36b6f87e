using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Bench;

/// <summary>`saesharp bench train`: tokens/s of a full training step (forward, backward, clip, Adam) per architecture.</summary>
public static class TrainBench
{
    public static int Run(TextWriter o, bool quick)
    {
        int B = quick ? 1024 : 4096, dIn = 512, dSae = quick ? 4096 : 16384, k = 32;
        var all = Compute.All;
        var rng = new Rng(5);
        var x = Tensor.Uninitialized(B, dIn);
        rng.FillNormal(x.Span);
        var a = Tensor.Uninitialized(B, dIn); var w = Tensor.Uninitialized(dIn, dSae); var c = Tensor.Uninitialized(B, dSae);
        rng.FillNormal(a.Span); rng.FillNormal(w.Span);
        double gemm = BenchUtil.BestSeconds(() => Gemm.MatMul(a, w, c, compute: all), quick ? 1 : 3);
        o.WriteLine($"training step, B={B}, d_in={dIn}, d_sae={dSae}, k={k}, {all.Threads} threads; one dense {B}x{dIn}x{dSae} GEMM: {BenchUtil.Ms(gemm).Trim()}");
        foreach (var arch in new[] { "topk", "batchtopk", "standard", "jumprelu", "gated" })
        {
            var sae = SaeRegistry.Create(new SaeConfig { Architecture = arch, DIn = dIn, DSae = dSae, K = arch.Contains("topk") ? k : 0 });
            SaeTrainable.Initialize(sae, new Rng(1));
            var trainable = new SaeTrainable(sae);
            var grads = sae.Params.ToDictionary(kv => kv.Key, kv => new Tensor(kv.Value.Shape.ToArray()));
            var adam = new Adam(trainable.Parameters);
            var dead = new bool[dSae];
            for (int j = 0; j < dSae; j += 7) dead[j] = true; // exercise AuxK like a run with some dead latents
            var inputs = new StepInputs(arch.Contains("topk") ? 0 : 5, dead);
            void Step()
            {
                trainable.ForwardBackward(x, x, inputs, grads);
                trainable.BeforeOptimizerStep(grads);
                Adam.ClipGradNorm(grads.Values, 1.0);
                adam.Update(trainable.Parameters, grads, 1e-4f, all);
                trainable.AfterOptimizerStep();
            }
            var loss = new SaeLossOptions { L1Coefficient = inputs.SparsityCoefficient, L0Coefficient = inputs.SparsityCoefficient, DeadMask = dead };
            double fwd = BenchUtil.BestSeconds(() => sae.Forward(x, loss), quick ? 1 : 3);
            double fwdBwd = BenchUtil.BestSeconds(() => trainable.ForwardBackward(x, x, inputs, grads), quick ? 1 : 3);
            double s = BenchUtil.BestSeconds(Step, quick ? 1 : 3);
            o.WriteLine($"  {arch,-10} forward {BenchUtil.Ms(fwd)} ({fwd / gemm,4:F2} GEMM)  forward+backward {BenchUtil.Ms(fwdBwd)} ({fwdBwd / gemm,4:F2} GEMM)  " +
                        $"full step {BenchUtil.Ms(s)} {B / s,7:N0} tokens/s ({s / gemm,4:F2} GEMM)");
        }
        return 0;
    }
}
