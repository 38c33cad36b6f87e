using System.Text.Json;
using SaeSharp.Data;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Training;

/// <summary>drrik's <c>fit</c> settings: how many passes over the array and the fraction of rows held out.</summary>
public sealed record FitOptions
{
    /// <summary>Passes over the training rows (drrik's num_epochs).</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>The last ⌊n · fraction⌋ rows are held out for validation (drrik's validation_split).</summary>
    public double ValidationFraction { get; init; } = 0.1;

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentException($"epochs must be at least 1, got {Epochs}");
        if (!(ValidationFraction >= 0 && ValidationFraction < 1))
            throw new ArgumentException($"validation_fraction must be in [0, 1), got {ValidationFraction}");
    }
}

/// <summary>
/// drrik-style fit mode on top of <see cref="Trainer"/>: the array is split into training rows and the last
/// <see cref="FitOptions.ValidationFraction"/> of rows (held out, as drrik's validation_split), the training rows are
/// reshuffled every epoch with the seeded RNG and served in ⌊rows / batch_size⌋ full batches
/// (<see cref="InMemoryActivationSource"/> with drop-last), and after every epoch the trainer logs the epoch's mean
/// training loss and L0 with the validation MSE and L0 (epochs.jsonl, metrics.jsonl, the progress callback).
/// Checkpoints and resume are the trainer's, bit for bit.
/// </summary>
public sealed class FitRunner
{
    public Tensor TrainRows { get; }
    public Tensor ValidationRows { get; }
    public long StepsPerEpoch { get; }
    /// <summary>The trainer's settings: the given ones with TotalSteps = epochs × steps per epoch.</summary>
    public TrainerConfig Config { get; }
    public InMemoryActivationSource Source { get; }
    public Trainer Trainer { get; }

    /// <param name="activations">[n, d_in]; not modified (the training and validation rows are views of it).</param>
    public FitRunner(ITrainableSae sae, Tensor activations, TrainerConfig cfg, FitOptions fit, string runDir, Compute? compute = null)
    {
        fit.Validate();
        if (activations.Rank != 2) throw new ArgumentException($"activations must be a [n, d_in] matrix, got [{activations.ShapeString}]");
        (TrainRows, ValidationRows) = Split(activations, fit.ValidationFraction);
        if (TrainRows.Rows < cfg.BatchSize)
            throw new ArgumentException($"batch_size {cfg.BatchSize} is larger than the {TrainRows.Rows} training rows " +
                                        $"({activations.Rows} rows, validation_fraction {fit.ValidationFraction} held out)");
        StepsPerEpoch = TrainRows.Rows / cfg.BatchSize;
        Config = cfg with { TotalSteps = checked(fit.Epochs * StepsPerEpoch), StepsPerEpoch = StepsPerEpoch };
        Source = new InMemoryActivationSource(TrainRows, SourceSeed(cfg.Seed), shuffle: true, endless: true, dropLast: true);
        Trainer = new Trainer(sae, Source, Config, runDir, compute, ValidationRows);
    }

    /// <summary>The shuffling seed of the training rows (the CLI's source seed: run seed + 1).</summary>
    public static ulong SourceSeed(ulong seed) => unchecked(seed + 1);

    /// <summary>drrik's split: the first n − ⌊n · fraction⌋ rows train, the rest validate (views, no copy).</summary>
    public static (Tensor Train, Tensor Validation) Split(Tensor data, double validationFraction)
    {
        if (!(validationFraction >= 0 && validationFraction < 1))
            throw new ArgumentException($"validation_fraction must be in [0, 1), got {validationFraction}");
        int n = data.Rows;
        int nVal = (int)(n * validationFraction);
        return (data.RowSlice(0, n - nVal), data.RowSlice(n - nVal, nVal));
    }

    public long ResumeIfPossible() => Trainer.ResumeIfPossible();

    public TrainSummary Run(CancellationToken cancel = default, Action<TrainProgress>? progress = null) => Trainer.Run(cancel, progress);

    /// <summary>The epochs recorded in an epochs.jsonl file (validation values missing or null read as NaN).</summary>
    public static IReadOnlyList<EpochMetrics> ReadEpochs(string path)
    {
        var list = new List<EpochMetrics>();
        if (!File.Exists(path)) return list;
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            double Get(string key) => r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
            list.Add(new EpochMetrics((long)Get("epoch"), (long)Get("epochs"), (long)Get("step"), Get("train_loss"), Get("train_mse"), Get("train_l0"),
                Get("val_loss"), Get("val_l0"), Get("val_explained_variance")));
        }
        return list;
    }
}
