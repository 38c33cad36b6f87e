using SaeSharp.Data;
using SaeSharp.Saes;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Training;

public class TrainerTests
{
    // Independent sparse features in superposition: 48 unit directions in 32 dimensions, each firing with p = 0.04.
    private static Tensor KnownDictionaryData(int rows, out Tensor dictionary, ulong seed = 3)
    {
        var rng = new Rng(seed);
        const int n = 48, d = 32;
        dictionary = new Tensor(n, d);
        rng.FillNormal(dictionary.Span);
        for (int i = 0; i < n; i++)
        {
            var row = dictionary.Row(i);
            float norm = System.Numerics.Tensors.TensorPrimitives.Norm(row);
            System.Numerics.Tensors.TensorPrimitives.Divide(row, norm, row);
        }
        var f = new Tensor(rows, n);
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < n; i++)
                if (rng.Bernoulli(0.04)) f[r, i] = (float)(1 + rng.NextDouble());
        return Gemm.MatMul(f, dictionary, Compute.All);
    }

    private static (SaeTrainable Sae, Trainer Trainer) Make(string arch, Tensor data, string dir, TrainerSettings cfg, ulong seed = 1)
    {
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = arch, DIn = data.Cols, DSae = 64, K = 3 }, Compute.All);
        SaeTrainable.Initialize(sae, new Rng(seed), decoderInitNorm: 0.1);
        var trainable = new SaeTrainable(sae, unitNormDecoder: arch == "standard");
        var trainer = new Trainer(trainable, new InMemoryActivationSource(data, seed: 7), cfg, dir);
        return (trainable, trainer);
    }

    /// <summary>
    /// The logged L0 counts positive activations, as SAELens's (feature_acts > 0): a top-k SAE whose pre-activations
    /// are all negative keeps k entries per row that its ReLU zeroes, and logs L0 0, not k; a jumprelu SAE's sparse
    /// codes also hold entries inside the threshold window that did not fire, which are not counted either.
    /// </summary>
    [Theory]
    [InlineData("topk")]
    [InlineData("jumprelu")]
    public void LoggedL0CountsPositiveActivations(string arch)
    {
        var data = KnownDictionaryData(256, out _);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var cfg = new TrainerSettings { Steps = 1, BatchSize = 256, MetricsEvery = 1 };
        var (sae, trainer) = Make(arch, data, dir, cfg);
        var bEnc = sae.Sae.Params["b_enc"].Span;
        if (arch == "topk") bEnc.Fill(-100);
        else
        {
            ((JumpReluSae)sae.Sae).SparseDensity = 1;
            bEnc.Fill(0.005f); // pre-activations near the 0.01 thresholds: many inside the window, some firing
        }
        var forward = sae.Sae.Forward(data, new SaeLossOptions());
        int positive = forward.DenseFeatures().ToArray().Count(v => v > 0);
        if (arch == "jumprelu") Assert.True(forward.Codes!.Count > positive, "no window entries: the check would be vacuous");
        trainer.Run();
        var line = System.Text.Json.JsonDocument.Parse(File.ReadLines(trainer.MetricsPath).First()).RootElement;
        Assert.Equal((double)positive / data.Rows, line.GetProperty("l0").GetDouble(), 9);
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData("topk", 0.0)]
    [InlineData("batchtopk", 0.0)]
    [InlineData("standard", 0.3)]
    public void RecoversAKnownSparseDictionary(string arch, double l1)
    {
        var data = KnownDictionaryData(16_384, out var dict);
        var cfg = new TrainerSettings { Steps = 1500, BatchSize = 256, Lr = 3e-3, L1Coefficient = l1, L1WarmUpSteps = 100, MetricsEvery = 100, DeadFeatureWindow = 200 };
        var dir = Directory.CreateTempSubdirectory().FullName;
        var (sae, trainer) = Make(arch, data, dir, cfg);
        var summary = trainer.Run();
        var firstLoss = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).First();
        Assert.Equal(1500, summary.Steps);
        Assert.True(summary.LastMetrics["explained_variance"] > 0.9, $"{arch}: final explained variance {summary.LastMetrics["explained_variance"]} (first line {firstLoss})");
        // Every true feature has a decoder row pointing the same way.
        var cos = SyntheticEvals.AbsCosine(dict, sae.Sae.WDec, compute: Compute.All);
        int recovered = 0;
        for (int i = 0; i < dict.Rows; i++) if (cos.Row(i).ToArray().Max() > 0.9f) recovered++;
        Assert.True(recovered >= dict.Rows - 2, $"{arch}: {recovered} of {dict.Rows} features recovered at |cos| > 0.9");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void ResumeContinuesBitForBit()
    {
        var data = KnownDictionaryData(2048, out _);
        var cfg = new TrainerSettings { Steps = 40, BatchSize = 64, Lr = 1e-3, MetricsEvery = 5, CheckpointEvery = 20, DeadFeatureWindow = 5 };
        var straightDir = Directory.CreateTempSubdirectory().FullName;
        var (straight, t1) = Make("batchtopk", data, straightDir, cfg);
        t1.Run();

        var resumedDir = Directory.CreateTempSubdirectory().FullName;
        var (_, half) = Make("batchtopk", data, resumedDir, cfg with { Steps = 20 });
        half.Run();
        var (resumed, t2) = Make("batchtopk", data, resumedDir, cfg, seed: 99); // different init: everything must come from the checkpoint
        Assert.Equal(20, t2.ResumeIfPossible());
        t2.Run();

        foreach (var (name, p) in straight.Parameters)
            Assert.True(p.Span.SequenceEqual(resumed.Parameters[name].Span), $"parameter {name} differs after resume");
        Assert.Equal(((TopKSae)straight.Sae).TopKThreshold, ((TopKSae)resumed.Sae).TopKThreshold);
        Assert.Equal(File.ReadAllLines(Path.Combine(straightDir, "metrics.jsonl")).Select(StripTiming),
                     File.ReadAllLines(Path.Combine(resumedDir, "metrics.jsonl")).Select(StripTiming));
    }

    private static string StripTiming(string line) => System.Text.RegularExpressions.Regex.Replace(line, "\"tokens_per_second\":[^,}]*", "");

    [Fact]
    public void NonFiniteBatchStopsNamingTheStep()
    {
        var data = KnownDictionaryData(256, out _);
        data[130, 3] = float.NaN;
        var dir = Directory.CreateTempSubdirectory().FullName;
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = data.Cols, DSae = 16, K = 2 }, Compute.All);
        SaeTrainable.Initialize(sae, new Rng(1));
        var source = new NanAfter(data, 2);
        var trainer = new Trainer(new SaeTrainable(sae), source, new TrainerSettings { Steps = 10, BatchSize = 64, CheckpointEvery = 1 }, dir);
        var e = Assert.Throws<InvalidDataException>(() => trainer.Run());
        Assert.Contains("step 3", e.Message);
        Assert.Equal(2, Checkpoint.LoadLatest(trainer.CheckpointDir)!.Value.Step);
    }

    // Yields clean batches, then one with a NaN (sources normally reject NaN at load; a live model can still produce one).
    private sealed class NanAfter(Tensor data, int cleanBatches) : IActivationSource
    {
        private int _served;
        public int Dim => data.Cols;
        public bool Next(Tensor batch)
        {
            for (int r = 0; r < batch.Rows; r++) data.Row(r).CopyTo(batch.Row(r));
            if (++_served > cleanBatches) batch[0, 0] = float.NaN;
            return true;
        }
        public IReadOnlyDictionary<string, string> Position => new Dictionary<string, string> { ["served"] = _served.ToString() };
        public void Restore(IReadOnlyDictionary<string, string> position) => _served = int.Parse(position["served"]);
    }
}
