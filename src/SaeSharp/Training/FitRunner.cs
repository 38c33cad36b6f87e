using System.Text.Json;
using SaeSharp.Data;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Training;

/// <summary>
/// drrik-style fit mode on top of <see cref="Trainer"/>: the array is split into training rows and the last
/// <see cref="TrainerSettings.ValidationFraction"/> of rows (held out, as drrik's validation_split), the training rows are
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
    public InMemoryActivationSource Source { get; }
    public Trainer Trainer { get; }

    /// <param name="activations">[n, d_in]; not modified (the training and validation rows are views of it).</param>
    /// <param name="cfg">Settings with epochs &gt; 0 (and validation_fraction, default 0.1).</param>
    public FitRunner(ITrainableSae sae, Tensor activations, TrainerSettings cfg, string runDir)
    {
        if (!cfg.FitMode) throw new ArgumentException($"fit mode needs epochs of at least 1, got {cfg.Epochs}");
        cfg.Validate();
        if (activations.Rank != 2) throw new ArgumentException($"activations must be a [n, d_in] matrix, got [{activations.ShapeString}]");
        double fraction = cfg.HeldOutFraction();
        (TrainRows, ValidationRows) = Split(activations, fraction);
        if (TrainRows.Rows < cfg.BatchSize)
            throw new ArgumentException($"batch_size {cfg.BatchSize} is larger than the {TrainRows.Rows} training rows " +
                                        $"({activations.Rows} rows, validation_fraction {fraction} held out)");
        StepsPerEpoch = TrainRows.Rows / cfg.BatchSize;
        Source = new InMemoryActivationSource(TrainRows, SourceSeed(cfg.Seed), shuffle: true, endless: true, dropLast: true);
        Trainer = new Trainer(sae, Source, cfg, runDir, new EpochPlan(StepsPerEpoch, ValidationRows));
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

    public long ResumeIfPossible(Action<string>? warn = null) => Trainer.ResumeIfPossible(warn);

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
