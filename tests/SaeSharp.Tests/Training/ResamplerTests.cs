using System.Numerics.Tensors;
using System.Text.Json;
using SaeSharp.Data;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Training;

public class ResamplerTests
{
    private static Tensor Random(Rng rng, params int[] shape)
    {
        var t = new Tensor(shape);
        rng.FillNormal(t.Span);
        return t;
    }

    /// <summary>Dense features where only <paramref name="firing"/> latents are positive (in every row).</summary>
    private static SparseCodes Firing(int rows, int latents, IEnumerable<int> firing)
    {
        var f = new Tensor(rows, latents);
        foreach (int j in firing) for (int r = 0; r < rows; r++) f[r, j] = 1;
        return SaeTrainable.ToCodes(f, compute: Compute.All);
    }

    [Fact]
    public void ReinitialisesExactlyTheDeadLatentsAndZeroesTheirMoments()
    {
        const int dIn = 8, dSae = 16, rows = 32;
        var rng = new Rng(5);
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = dIn, DSae = dSae }, Compute.All);
        SaeTrainable.Initialize(sae, rng, decoderInitNorm: 1);
        rng.FillNormal(sae.Params["b_enc"].Span);
        var trainable = new SaeTrainable(sae, unitNormDecoder: true);
        var adam = new Adam(trainable.Parameters);
        // Two updates with random gradients, so every moment is non-zero.
        for (int i = 0; i < 2; i++)
            adam.Update(trainable.Parameters, trainable.Parameters.ToDictionary(kv => kv.Key, kv => Random(rng, kv.Value.Shape.ToArray())), 1e-3f, compute: Compute.All);

        var resampler = new Resampler(dIn, dSae, window: 3, samples: rows, seed: 9);
        var alive = Enumerable.Range(0, 10).ToArray();
        for (int s = 0; s < 3; s++) resampler.Record(Random(rng, rows, dIn), Firing(rows, dSae, alive).FiringCounts(compute: Compute.All));
        int[] expectedDead = [10, 11, 12, 13, 14, 15];
        Assert.Equal(expectedDead, resampler.DeadLatents());

        var paramsBefore = trainable.Parameters.ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        var mBefore = adam.FirstMoment.ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        var vBefore = adam.SecondMoment.ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        var reservoir = resampler.Reservoir.Clone();

        var result = resampler.Resample(trainable, adam);
        Assert.Equal(expectedDead, result.Latents);
        Assert.Equal(expectedDead.Length, result.SourceRows.Length);

        // Untouched latents: parameters and both moments bit-identical; b_dec completely untouched.
        foreach (var (before, after) in new[] { (paramsBefore, trainable.Parameters), (mBefore, adam.FirstMoment), (vBefore, adam.SecondMoment) })
        {
            Assert.True(before["b_dec"].Span.SequenceEqual(after["b_dec"].Span));
            foreach (int j in alive)
            {
                Assert.True(before["W_dec"].Row(j).SequenceEqual(after["W_dec"].Row(j)), $"W_dec row {j} changed");
                for (int i = 0; i < dIn; i++) Assert.Equal(before["W_enc"][i, j], after["W_enc"][i, j]);
                Assert.Equal(before["b_enc"][j], after["b_enc"][j]);
            }
        }

        double meanAlive = alive.Average(j => Math.Sqrt(Enumerable.Range(0, dIn).Sum(i => (double)paramsBefore["W_enc"][i, j] * paramsBefore["W_enc"][i, j])));
        for (int k = 0; k < expectedDead.Length; k++)
        {
            int j = expectedDead[k];
            foreach (var moments in new[] { adam.FirstMoment, adam.SecondMoment })
            {
                Assert.All(moments["W_dec"].Row(j).ToArray(), v => Assert.Equal(0f, v));
                for (int i = 0; i < dIn; i++) Assert.Equal(0f, moments["W_enc"][i, j]);
                Assert.Equal(0f, moments["b_enc"][j]);
            }
            var dec = sae.WDec.Row(j).ToArray();
            Assert.Equal(1.0, TensorPrimitives.Norm<float>(dec), 5);
            var x = reservoir.Row(result.SourceRows[k]).ToArray();
            float xn = TensorPrimitives.Norm<float>(x);
            for (int i = 0; i < dIn; i++)
            {
                Assert.Equal(x[i] / xn, dec[i], 6);
                Assert.Equal(0.2 * meanAlive * dec[i], sae.WEnc[i, j], 5);
            }
            Assert.Equal(0f, sae.Params["b_enc"][j]);
            Assert.Equal(0, resampler.StepsSinceFired[j]);
        }
        // Nothing is dead any more until the window passes again.
        Assert.Empty(resampler.DeadLatents());
        Assert.Equal(0, resampler.Resample(trainable, adam).Count);
    }

    [Fact]
    public void SampleWeightsAreTheSquaredSummedSquaredError()
    {
        var x = Tensor.FromArray([1, 2, 0, 0, 3, -1, 0, 0], 4, 2);
        var y = Tensor.FromArray([1, 0, 0, 0, 0, 0, 1, 1], 4, 2);
        var w = Resampler.SampleWeights(x, y);
        Assert.Equal(16.0, w[0]);          // (0 + 4)²
        Assert.Equal(0.0, w[1]);           // perfect
        Assert.Equal(100.0, w[2]);         // (9 + 1)²
        Assert.Equal(0.0, w[3]);           // a zero row gives no direction
    }

    [Fact]
    public void DrawsFollowTheProbabilities()
    {
        double[] weights = [1, 4, 0, 9, 16, 0.5];
        var rng = new Rng(123);
        const int n = 200_000;
        var counts = new int[weights.Length];
        foreach (int i in Resampler.Draw(weights, n, rng)) counts[i]++;
        double total = weights.Sum();
        double chi2 = 0;
        for (int i = 0; i < weights.Length; i++)
        {
            double expected = n * weights[i] / total;
            if (weights[i] == 0) { Assert.Equal(0, counts[i]); continue; }
            chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
        }
        // 4 degrees of freedom: P(χ² > 23.5) < 1e-4.
        Assert.True(chi2 < 23.5, $"chi² {chi2} with counts {string.Join(",", counts)}");
        // All-zero weights fall back to uniform over the usable rows.
        var fallback = Resampler.Draw([0, 0, 0], 30_000, rng, [1, 0, 2]);
        Assert.DoesNotContain(1, fallback);
        Assert.InRange(fallback.Count(i => i == 0), 14_000, 16_000);
    }

    /// <summary>An SAE whose reconstruction is always zero, so a row's resampling weight is ‖x‖⁴.</summary>
    private sealed class ZeroReconstruction(int dIn, int dSae) : ITrainableSae
    {
        private readonly Dictionary<string, Tensor> _p = new()
        {
            ["W_enc"] = new Tensor(dIn, dSae), ["b_enc"] = new Tensor(dSae), ["W_dec"] = new Tensor(dSae, dIn),
        };
        public Compute Compute => Compute.Single;
        public bool SparsityPenalty => false;
        public int DIn => dIn;
        public int DSae => dSae;
        public IReadOnlyDictionary<string, Tensor> Parameters => _p;
        public SaeEvaluation Evaluate(Tensor input) => new(new Tensor(input.Rows, dIn), new SparseCodes(input.Rows, dSae, 0));
        public TrainStepResult ForwardBackward(Tensor input, Tensor target, StepInputs inputs, IReadOnlyDictionary<string, Tensor> gradients) => throw new NotSupportedException();
        public void BeforeOptimizerStep(IReadOnlyDictionary<string, Tensor> gradients) { }
        public void AfterOptimizerStep() { }
        public IReadOnlyDictionary<string, double> ScalarState => new Dictionary<string, double>();
        public void RestoreScalarState(IReadOnlyDictionary<string, double> state) { }
    }

    [Fact]
    public void ResamplingPicksRowsInProportionToTheirSquaredErrorSquared()
    {
        const int dSae = 6000;
        var sae = new ZeroReconstruction(2, dSae);
        var adam = new Adam(sae.Parameters);
        var resampler = new Resampler(2, dSae, window: 1, samples: 3, seed: 4);
        // Rows of norm 1, 2 and 3: errors 1, 4, 9, weights 1, 16, 81.
        resampler.Record(Tensor.FromArray([1, 0, 0, 2, 3, 0], 3, 2), new int[dSae]);
        var result = resampler.Resample(sae, adam);
        Assert.Equal(dSae, result.Count);
        double[] p = [1 / 98.0, 16 / 98.0, 81 / 98.0];
        for (int r = 0; r < 3; r++)
        {
            double freq = result.SourceRows.Count(i => i == r) / (double)dSae;
            double sd = Math.Sqrt(p[r] * (1 - p[r]) / dSae);
            Assert.True(Math.Abs(freq - p[r]) < 5 * sd, $"row {r}: frequency {freq}, expected {p[r]}");
        }
        // Each latent's decoder row is the normalised row it drew; every latent was dead, so W_enc uses drrik's fallback norm.
        float[][] unit = [[1, 0], [0, 1], [1, 0]];
        for (int j = 0; j < dSae; j++)
        {
            var dir = unit[result.SourceRows[j]];
            Assert.Equal(dir, sae.Parameters["W_dec"].Row(j).ToArray());
            Assert.Equal((float)(0.2 * 0.1) * dir[0], sae.Parameters["W_enc"][0, j]);
        }
    }

    private static (SaeTrainable Sae, Trainer Trainer) Make(Tensor data, string dir, TrainerSettings cfg, ulong seed)
    {
        // top-1 over 48 latents with 8 rows a step: at most 32 latents fire in a 4-step window, so every resampling
        // has dead latents to re-initialise.
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = data.Cols, DSae = 48, K = 1 }, Compute.All);
        SaeTrainable.Initialize(sae, new Rng(seed), decoderInitNorm: 1);
        var trainable = new SaeTrainable(sae, unitNormDecoder: true);
        return (trainable, new Trainer(trainable, new InMemoryActivationSource(data, seed: 7), cfg, dir));
    }

    [Fact]
    public void RunWithResamplingResumesBitForBit()
    {
        var data = SparseDictionaryData.Sample(2048, 3);
        var cfg = new TrainerSettings
        {
            Steps = 26, BatchSize = 8, Lr = 3e-3, MetricsEvery = 10, CheckpointEvery = 0,
            DeadFeatureWindow = 5, ResampleInterval = 6, ResampleWindow = 4, ResampleSamples = 100,
        };
        var straightDir = Directory.CreateTempSubdirectory().FullName;
        var (straight, t1) = Make(data, straightDir, cfg, seed: 1);
        t1.Run();

        var resumedDir = Directory.CreateTempSubdirectory().FullName;
        // Interrupted after step 13: between resamplings (every 6) and metrics lines (every 10), so the reservoir, the
        // firing counters and the resampled count not yet logged must all come from the checkpoint.
        var (_, half) = Make(data, resumedDir, cfg, seed: 1);
        using var cancel = new CancellationTokenSource();
        Assert.True(half.Run(cancel.Token, p => { if (p.Step == 13) cancel.Cancel(); }).Interrupted);
        var (resumed, t2) = Make(data, resumedDir, cfg, seed: 99);
        Assert.Equal(13, t2.ResumeIfPossible());
        t2.Run();

        foreach (var (name, p) in straight.Parameters)
            Assert.True(p.Span.SequenceEqual(resumed.Parameters[name].Span), $"parameter {name} differs after resume");
        foreach (var (name, m) in t1.Optimizer.SecondMoment)
            Assert.True(m.Span.SequenceEqual(t2.Optimizer.SecondMoment[name].Span), $"second moment of {name} differs after resume");
        var lines = File.ReadAllLines(Path.Combine(straightDir, "metrics.jsonl"));
        Assert.Equal(lines.Select(StripTiming), File.ReadAllLines(Path.Combine(resumedDir, "metrics.jsonl")).Select(StripTiming));
        double resampled = lines.Sum(l => JsonDocument.Parse(l).RootElement.GetProperty("resampled_latents").GetDouble());
        Assert.True(resampled > 0, "no latent was resampled; the test does not exercise resampling");
        Directory.Delete(straightDir, true);
        Directory.Delete(resumedDir, true);
    }

    private static string StripTiming(string line) => System.Text.RegularExpressions.Regex.Replace(line, "\"tokens_per_second\":[^,}]*", "");

    [Fact]
    public void BadResampleSettingsAreRejectedByName()
    {
        Assert.Contains("resample_interval", Assert.Throws<ArgumentException>(() => new TrainerSettings { ResampleInterval = -1 }.Validate()).Message);
        Assert.Contains("resample_window", Assert.Throws<ArgumentException>(() => new TrainerSettings { ResampleWindow = 0 }.Validate()).Message);
        Assert.Contains("resample_samples", Assert.Throws<ArgumentException>(() => new TrainerSettings { ResampleSamples = 0 }.Validate()).Message);
    }
}
