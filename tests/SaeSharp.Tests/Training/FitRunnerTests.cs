using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Training;

public class FitRunnerTests
{
    private static SaeTrainable Standard(int dIn, ulong seed = 1)
    {
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = dIn, DSae = 32 }, Compute.All);
        SaeTrainable.Initialize(sae, new Rng(seed), decoderInitNorm: 1);
        return new SaeTrainable(sae, unitNormDecoder: true);
    }

    [Fact]
    public void EpochMetricsAreLoggedAndTheLossFalls()
    {
        var data = SparseDictionaryData.Sample(4000, 3);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var cfg = new TrainerSettings { BatchSize = 64, Lr = 3e-3, L1Coefficient = 0.05, MetricsEvery = 1000, Epochs = 6, ValidationFraction = 0.1 };
        var fit = new FitRunner(Standard(16), data, cfg, dir);
        Assert.Equal(3600, fit.TrainRows.Rows);
        Assert.Equal(400, fit.ValidationRows.Rows);
        Assert.Equal(3600 / 64, fit.StepsPerEpoch);
        var reported = new List<EpochMetrics>();
        var summary = fit.Run(progress: p => { if (p.Epoch is not null) reported.Add(p.Epoch); });

        Assert.Equal(6 * fit.StepsPerEpoch, summary.Steps);
        var epochs = FitRunner.ReadEpochs(fit.Trainer.EpochsPath);
        Assert.Equal(Enumerable.Range(1, 6).Select(e => (long)e), epochs.Select(e => e.Epoch));
        Assert.Equal(epochs.Select(e => e.Epoch * fit.StepsPerEpoch), epochs.Select(e => e.Step));
        Assert.Equal(epochs, reported);
        Assert.Equal(6, summary.LastEpoch!.Epoch);
        Assert.All(epochs, e =>
        {
            Assert.Equal(6, e.Epochs);
            Assert.True(double.IsFinite(e.TrainLoss) && double.IsFinite(e.ValLoss) && e.ValL0 > 0 && e.TrainL0 > 0, e.ToString());
        });
        Assert.True(epochs[^1].TrainLoss < 0.7 * epochs[0].TrainLoss, $"train loss {epochs[0].TrainLoss} -> {epochs[^1].TrainLoss}");
        Assert.True(epochs[^1].ValLoss < 0.7 * epochs[0].ValLoss, $"validation loss {epochs[0].ValLoss} -> {epochs[^1].ValLoss}");
        Assert.True(epochs[^1].ValExplainedVariance > epochs[0].ValExplainedVariance);
        // The epoch's values are in metrics.jsonl too, on the step that ends it.
        var withEpoch = File.ReadLines(fit.Trainer.MetricsPath).Where(l => l.Contains("\"val_loss\"")).ToList();
        Assert.Equal(6, withEpoch.Count);
        Directory.Delete(dir, true);
    }

    /// <summary>Records the marker (column 0) of every row trained on and every row evaluated.</summary>
    private sealed class Spy(SaeTrainable inner) : ITrainableSae
    {
        public readonly List<List<float>> Trained = [];
        public readonly List<float> Evaluated = [];
        public Compute Compute => inner.Compute;
        public bool SparsityPenalty => inner.SparsityPenalty;
        public int DIn => inner.DIn;
        public int DSae => inner.DSae;
        public IReadOnlyDictionary<string, Tensor> Parameters => inner.Parameters;
        public TrainStepResult ForwardBackward(Tensor input, Tensor target, StepInputs inputs, IReadOnlyDictionary<string, Tensor> gradients)
        {
            Trained.Add(Enumerable.Range(0, input.Rows).Select(r => input[r, 0]).ToList());
            return inner.ForwardBackward(input, target, inputs, gradients);
        }
        public SaeEvaluation Evaluate(Tensor input)
        {
            for (int r = 0; r < input.Rows; r++) Evaluated.Add(input[r, 0]);
            return inner.Evaluate(input);
        }
        public void BeforeOptimizerStep(IReadOnlyDictionary<string, Tensor> gradients) => inner.BeforeOptimizerStep(gradients);
        public void AfterOptimizerStep() => inner.AfterOptimizerStep();
        public IReadOnlyDictionary<string, double> ScalarState => inner.ScalarState;
        public void RestoreScalarState(IReadOnlyDictionary<string, double> state) => inner.RestoreScalarState(state);
    }

    [Fact]
    public void ValidationRowsNeverEnterTrainingBatches()
    {
        // Row r carries the marker r in column 0; the last 100 of 1000 rows are held out.
        var data = SparseDictionaryData.Sample(1000, 3);
        for (int r = 0; r < data.Rows; r++) data[r, 0] = r;
        var dir = Directory.CreateTempSubdirectory().FullName;
        var spy = new Spy(Standard(16));
        var cfg = new TrainerSettings { BatchSize = 64, Lr = 1e-3, L1Coefficient = 0.05, MetricsEvery = 1000, Epochs = 3, ValidationFraction = 0.1 };
        var fit = new FitRunner(spy, data, cfg, dir);
        fit.Run();

        Assert.Equal(3 * 14, spy.Trained.Count); // ⌊900 / 64⌋ = 14 full batches an epoch
        var epochs = spy.Trained.Chunk(14).Select(batches => batches.SelectMany(b => b).ToList()).ToList();
        foreach (var epoch in epochs)
        {
            Assert.All(epoch, m => Assert.InRange(m, 0, 899));
            Assert.Equal(epoch.Count, epoch.Distinct().Count()); // each row at most once an epoch
        }
        Assert.NotEqual(epochs[0], epochs[1]); // reshuffled every epoch
        // Validation evaluates exactly the held-out rows, once per epoch.
        Assert.Equal(Enumerable.Repeat(Enumerable.Range(900, 100).Select(r => (float)r), 3).SelectMany(x => x), spy.Evaluated);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void InterruptedFitResumesBitForBit()
    {
        var data = SparseDictionaryData.Sample(1000, 3);
        var cfg = new TrainerSettings { BatchSize = 64, Lr = 3e-3, L1Coefficient = 0.05, MetricsEvery = 5, ResampleInterval = 10, ResampleWindow = 5, Epochs = 3, ValidationFraction = 0.2 };
        var straightDir = Directory.CreateTempSubdirectory().FullName;
        var straightSae = Standard(16);
        new FitRunner(straightSae, data, cfg, straightDir).Run();

        var resumedDir = Directory.CreateTempSubdirectory().FullName;
        using var cancel = new CancellationTokenSource();
        // Interrupted in the middle of the second epoch (12 steps an epoch).
        Assert.True(new FitRunner(Standard(16), data, cfg, resumedDir).Run(cancel.Token, p => { if (p.Step == 17) cancel.Cancel(); }).Interrupted);
        var resumedSae = Standard(16, seed: 5);
        var resumed = new FitRunner(resumedSae, data, cfg, resumedDir);
        Assert.Equal(17, resumed.ResumeIfPossible());
        resumed.Run();

        foreach (var (name, p) in straightSae.Parameters)
            Assert.True(p.Span.SequenceEqual(resumedSae.Parameters[name].Span), $"parameter {name} differs after resume");
        Assert.Equal(File.ReadAllLines(Path.Combine(straightDir, "epochs.jsonl")), File.ReadAllLines(Path.Combine(resumedDir, "epochs.jsonl")));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(resumedDir, "epochs.jsonl")).Length);
        Directory.Delete(straightDir, true);
        Directory.Delete(resumedDir, true);
    }

    [Fact]
    public void SplitAndOptionErrorsNameTheSetting()
    {
        var data = new Tensor(10, 2);
        var (train, val) = FitRunner.Split(data, 0.25);
        Assert.Equal(8, train.Rows); // drrik: n_val = int(10 · 0.25) = 2
        Assert.Equal(2, val.Rows);
        Assert.Contains("validation_fraction", Assert.Throws<ArgumentException>(() => new TrainerSettings { Epochs = 1, ValidationFraction = 1 }.Validate()).Message);
        Assert.Contains("epochs", Assert.Throws<ArgumentException>(() => new FitRunner(Standard(2), data, new TrainerSettings { BatchSize = 2 }, Path.GetTempPath())).Message);
        var e = Assert.Throws<ArgumentException>(() => new FitRunner(Standard(2), data, new TrainerSettings { BatchSize = 16, Epochs = 1 }, Path.GetTempPath()));
        Assert.Contains("batch_size", e.Message);
    }
}
