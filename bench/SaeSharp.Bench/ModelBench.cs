using System.Diagnostics;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Bench;

/// <summary>Transformer forward throughput: stories260K (if given) and a random GPT-2-small-shaped model.</summary>
public static class ModelBench
{
    /// <param name="storiesPath">stories260K folder or .bin; null skips that part.</param>
    /// <param name="quick">Smoke run: a 2-layer GPT-2-small slice on 2×32 tokens, one repetition.</param>
    public static int Run(TextWriter output, bool quick, string? storiesPath, Compute? compute = null)
    {
        compute ??= Compute.All;
        output.WriteLine($"model forward benchmark ({compute.Threads} threads)");
        if (storiesPath is not null)
        {
            var stories = HookedTransformer.Load(storiesPath, compute);
            Forward(output, "stories260K", stories, quick ? 2 : 8, quick ? 64 : 256, quick ? 1 : 5);
            Decode(output, "stories260K", stories, quick ? 16 : 256);
        }
        var gpt2 = RandomGpt2(quick ? 2 : 12, compute);
        Forward(output, quick ? "gpt2-small shape (2 of 12 layers)" : "gpt2-small shape", gpt2, quick ? 2 : 8, quick ? 32 : 128, quick ? 1 : 6);
        return 0;
    }

    private static void Forward(TextWriter output, string name, HookedTransformer model, int batch, int seq, int reps)
    {
        var rng = new Rng(1);
        var seqs = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, seq).Select(_ => rng.NextInt(model.Config.VocabSize)).ToArray()).ToArray();
        // warm-up: tiered JIT reaches optimised code only after a few calls
        for (int w = 0; w < 2; w++) model.RunBatch(seqs);
        // The floor: the forward's matrix-multiply FLOPs at the GEMM rate measured here on a layer-shaped product.
        // Rounds of (one forward, the GEMM rate), the best of each side kept: a shared VM's speed drifts by 10-30%
        // within a minute, and a rate probed once, after every forward, put the ratio anywhere from 0.86 to 1.41.
        var c = model.Config;
        int tokens = batch * seq;
        var gemmRate = GemmRate(tokens, c.DModel, c.DMlp);
        double s = double.MaxValue, rate = 0;
        for (int r = 0; r < reps; r++)
        {
            var sw = Stopwatch.StartNew();
            model.RunBatch(seqs);
            s = Math.Min(s, sw.Elapsed.TotalSeconds);
            rate = Math.Max(rate, gemmRate());
        }
        double perTokenMacs = (double)c.NLayers * (c.DModel * (double)(c.NHeads + 2 * c.NKvHeads) * c.DHead + (double)c.NHeads * c.DHead * c.DModel
                                                   + (c.GatedMlp ? 3.0 : 2.0) * c.DModel * c.DMlp) + (double)c.DModel * c.VocabSize;
        double attentionMacs = 2.0 * c.NLayers * batch * (double)seq * seq * c.NHeads * c.DHead;
        double flops = 2 * (perTokenMacs * tokens + attentionMacs);
        double floor = flops / rate;
        output.WriteLine($"  {name}: forward {batch}x{seq} tokens with logits: {s * 1e3:F1} ms, {tokens / s:N0} tokens/s; " +
                         $"{flops / 1e9:F1} GFLOP at the measured GEMM rate {rate / 1e9:F0} GFLOP/s = {floor * 1e3:F1} ms floor, ratio {s / floor:F2}");
    }

    /// <summary>
    /// A probe of this process's GEMM on one [m, k]·[k, n] product, its operands made once: each call gives the FLOP/s
    /// of the best of 3 timed products after a warm-up one.
    /// </summary>
    private static Func<double> GemmRate(int m, int k, int n)
    {
        var rng = new Rng(3);
        var a = Tensor.Uninitialized(m, k); var b = Tensor.Uninitialized(k, n); var c = Tensor.Uninitialized(m, n);
        rng.FillNormal(a.Span); rng.FillNormal(b.Span);
        return () =>
        {
            double best = double.MaxValue;
            for (int r = 0; r < 4; r++)
            {
                var sw = Stopwatch.StartNew();
                Gemm.MatMul(a, b, c, Compute.All);
                if (r > 0) best = Math.Min(best, sw.Elapsed.TotalSeconds);
            }
            return 2.0 * m * k * n / best;
        };
    }

    private static void Decode(TextWriter output, string name, HookedTransformer model, int tokens)
    {
        var opts = new GenerationOptions { MaxNewTokens = tokens, Sampling = new SamplingOptions { Temperature = 1 } };
        for (int w = 0; w < 3; w++) model.Generate([1], opts, new Rng(1));
        var sw = Stopwatch.StartNew();
        model.Generate([1], opts, new Rng(1));
        double s = sw.Elapsed.TotalSeconds;
        output.WriteLine($"  {name}: KV-cache sampling of {tokens} tokens: {tokens / s:N0} tokens/s");
    }

    /// <summary>GPT-2 small's shapes (d 768, 12 heads, MLP 3072, vocab 50257, 1024 positions) with N(0, 0.02²) weights.</summary>
    public static HookedTransformer RandomGpt2(int layers, Compute compute)
    {
        const int d = 768, mlp = 3072, vocab = 50257;
        var cfg = new TransformerConfig
        {
            Architecture = Architecture.Gpt2, DModel = d, NLayers = layers, NHeads = 12, NKvHeads = 12, DHead = 64, DMlp = mlp,
            VocabSize = vocab, MaxPositions = 1024, Norm = NormKind.LayerNorm, NormEps = 1e-5f, Act = Activation.GeluTanh,
            GatedMlp = false, LearnedPositions = true, Rope = RopeLayout.None, RotaryDim = 0, RopeTheta = 0,
            ParallelResidual = false, TiedEmbeddings = true,
        };
        var rng = new Rng(2024);
        Tensor Rand(params int[] shape)
        {
            var t = Tensor.Uninitialized(shape);
            rng.FillNormal(t.Span, 0, 0.02f);
            return t;
        }
        NormWeights Ln() => new(Tensor.Filled(1f, d), new Tensor(d));
        var blocks = Enumerable.Range(0, layers).Select(_ => new BlockWeights
        {
            Ln1 = Ln(), Ln2 = Ln(),
            Qkv = new Linear(Rand(d, 3 * d), new Tensor(3 * d), false), QkvLayout = FusedQkv.Blocks,
            O = new Linear(Rand(d, d), new Tensor(d), false),
            In = new Linear(Rand(d, mlp), new Tensor(mlp), false),
            Out = new Linear(Rand(mlp, d), new Tensor(d), false),
        }).ToArray();
        var wte = Rand(vocab, d);
        var weights = new ModelWeights { Embed = wte, PosEmbed = Rand(1024, d), Blocks = blocks, LnFinal = Ln(), Unembed = wte };
        return new HookedTransformer(cfg, weights, compute);
    }
}
