using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Runs;

/// <summary>The outcome of <see cref="TrainRun.Execute"/>.</summary>
public sealed record TrainRunResult(Sae Sae, TrainSummary Summary, double ScalingFactor, string OutputDir, TimeSpan Elapsed);

/// <summary>
/// One SAE training run end to end: initialisation (b_dec, normalisation), the trainer with checkpoints and
/// resume, and the final inference SAE in SAELens layout (batchtopk and matryoshka_batchtopk exported as jumprelu, the activation scale
/// folded in) with sparsity.safetensors and training metadata in cfg.json.
/// </summary>
public static class TrainRun
{
    public const string NormalizationFile = "normalization.json";
    /// <summary>The run's settings, so <c>--resume</c> continues with exactly the same ones.</summary>
    public const string SettingsFile = "train_settings.json";

    public static TrainSettings LoadSettings(string runDir)
    {
        string path = Path.Combine(runDir, SettingsFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{runDir} has no {SettingsFile}; is it a SaeSharp run folder?", path);
        try { return JsonSerializer.Deserialize<TrainSettings>(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path} is empty"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid run settings ({e.Message})"); }
    }

    public static TrainRunResult Execute(TrainSettings s, IActivationSource source, string outDir, CancellationToken cancel,
        Action<TrainProgress>? progress = null, JsonObject? metadata = null, Compute? compute = null)
    {
        if (s.FitMode) throw new ArgumentException("epochs needs an in-memory activations array (use ExecuteFit)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool resuming = Prepare(s, outDir);

        // The normalisation factor is estimated once and stored, so a resumed run scales exactly as before.
        double scale = Scale(s, outDir, resuming, () =>
        {
            var sample = new List<Tensor>();
            for (int i = 0; i < s.NormalizationBatches; i++)
            {
                var b = Tensor.Uninitialized(s.BatchSize, source.Dim);
                if (!source.Next(b)) break;
                sample.Add(b);
            }
            return sample;
        });
        IActivationSource trainSource = scale == 1 ? source : new ScaledSource(source, (float)scale);

        Tensor? bDecSample = null;
        if (s.BDecInit != "zeros" && !resuming)
        {
            bDecSample = Tensor.Uninitialized(Math.Min(s.BatchSize * 4, 16_384), source.Dim);
            if (!trainSource.Next(bDecSample)) throw new InvalidDataException("the activation source ended before b_dec could be initialised");
        }
        var (sae, trainable) = CreateSae(s, source.Dim, bDecSample);
        var trainer = new Trainer(trainable, trainSource, s.TrainerConfig(), outDir, compute);
        trainer.ResumeIfPossible();
        var summary = trainer.Run(cancel, progress);
        return Finish(s, sae, summary, scale, outDir, metadata, clock);
    }

    /// <summary>
    /// drrik's fit mode: <see cref="TrainSettings.Epochs"/> passes over <paramref name="activations"/> with the last
    /// <see cref="TrainSettings.HeldOutFraction"/> of rows held out (see <see cref="FitRunner"/>). The normalisation
    /// scale and the b_dec initialisation come from the training rows only.
    /// </summary>
    public static TrainRunResult ExecuteFit(TrainSettings s, Tensor activations, string outDir, CancellationToken cancel,
        Action<TrainProgress>? progress = null, JsonObject? metadata = null, Compute? compute = null)
    {
        if (!s.FitMode) throw new ArgumentException("ExecuteFit needs epochs > 0");
        if (activations.Rank != 2) throw new ArgumentException($"activations must be a [n, d_in] matrix, got [{activations.ShapeString}]");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        s.FitOptions().Validate();
        bool resuming = Prepare(s, outDir);
        var (train, _) = FitRunner.Split(activations, s.HeldOutFraction());
        double scale = Scale(s, outDir, resuming, () => [train]);
        if (scale != 1)
        {
            activations = activations.Clone();
            System.Numerics.Tensors.TensorPrimitives.Multiply(activations.Span, (float)scale, activations.Span);
            (train, _) = FitRunner.Split(activations, s.HeldOutFraction());
        }
        var (sae, trainable) = CreateSae(s, activations.Cols, s.BDecInit != "zeros" && !resuming ? train : null);
        var fit = new FitRunner(trainable, activations, s.TrainerConfig(), s.FitOptions(), outDir, compute);
        fit.ResumeIfPossible();
        var summary = fit.Run(cancel, progress);
        return Finish(s, sae, summary, scale, outDir, metadata, clock);
    }

    /// <summary>Validates the settings and creates the run folder; writes the settings unless resuming. Returns whether the run resumes.</summary>
    private static bool Prepare(TrainSettings s, string outDir)
    {
        s.Validate();
        Directory.CreateDirectory(outDir);
        bool resuming = File.Exists(Path.Combine(outDir, "checkpoints", "latest.json"));
        if (!resuming) AtomicFile.WriteAllText(Path.Combine(outDir, SettingsFile), JsonSerializer.Serialize(s, new JsonSerializerOptions { WriteIndented = true }));
        return resuming;
    }

    private static double Scale(TrainSettings s, string outDir, bool resuming, Func<IReadOnlyList<Tensor>> sample)
    {
        if (s.NormalizeActivations != "expected_average_only_in") return 1;
        string normPath = Path.Combine(outDir, NormalizationFile);
        if (resuming && File.Exists(normPath))
            return JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(normPath))!["scaling_factor"];
        double scale = Initialization.NormScalingFactor(sample());
        AtomicFile.WriteAllText(normPath, JsonSerializer.Serialize(new Dictionary<string, double> { ["scaling_factor"] = scale }));
        return scale;
    }

    private static (Sae Sae, SaeTrainable Trainable) CreateSae(TrainSettings s, int dIn, Tensor? bDecSample)
    {
        var rng = new Rng(s.Seed);
        var sae = SaeRegistry.Create(s.SaeConfig(dIn));
        float[]? bDec = bDecSample is null ? null : s.BDecInit switch
        {
            "mean" => Initialization.Mean(bDecSample),
            "median" => Initialization.CoordinateMedian(bDecSample),
            _ => Initialization.GeometricMedian(bDecSample),
        };
        SaeTrainable.Initialize(sae, rng, s.DecoderInitNorm, bDec);
        if (sae is JumpReluSae && s.UnitNormDecoder) throw new ArgumentException("unit_norm_decoder is only for architectures without a threshold");
        return (sae, new SaeTrainable(sae, s.LossOptions(), s.UnitNormDecoder));
    }

    private static TrainRunResult Finish(TrainSettings s, Sae sae, TrainSummary summary, double scale, string outDir,
        JsonObject? metadata, System.Diagnostics.Stopwatch clock)
    {
        if (summary.Interrupted) return new TrainRunResult(sae, summary, scale, outDir, clock.Elapsed);
        var final = sae is TopKSae { IsBatch: true } t ? t.ToJumpRelu() : sae;
        if (scale != 1) final.FoldActivationScale((float)scale);
        var meta = final.Config.Metadata;
        foreach (var (k, v) in metadata ?? []) meta[k] = v?.DeepClone();
        meta["trained_with"] = "saesharp";
        meta["training_steps"] = summary.Steps;
        meta["training_tokens"] = summary.TokensSeen;
        meta["final_l0"] = summary.LastMetrics.GetValueOrDefault("l0");
        meta["final_explained_variance"] = summary.LastMetrics.GetValueOrDefault("explained_variance");
        meta["dead_latents"] = summary.DeadLatents;
        meta["activation_scaling_factor"] = scale;
        if (s.FitMode)
        {
            meta["epochs"] = s.Epochs;
            meta["validation_fraction"] = s.HeldOutFraction();
            if (summary.LastMetrics.TryGetValue("val_loss", out var vl) && double.IsFinite(vl)) meta["final_val_loss"] = vl;
        }
        SaeFiles.Save(final, outDir, summary.Log10Density, SaeLensTrainingKeys.From(s));
        return new TrainRunResult(final, summary, scale, outDir, clock.Elapsed);
    }

    /// <summary>Multiplies every batch of a source by a constant (activation normalisation during training).</summary>
    private sealed class ScaledSource(IActivationSource inner, float scale) : IActivationSource
    {
        public int Dim => inner.Dim;
        public bool Next(Tensor batch)
        {
            if (!inner.Next(batch)) return false;
            System.Numerics.Tensors.TensorPrimitives.Multiply(batch.Span, scale, batch.Span);
            return true;
        }
        public IReadOnlyDictionary<string, string> Position => inner.Position;
        public void Restore(IReadOnlyDictionary<string, string> position) => inner.Restore(position);
    }

    public static string DescribeEpoch(EpochMetrics e) =>
        string.Create(CultureInfo.InvariantCulture, $"epoch {e.Epoch}/{e.Epochs}  train loss {e.TrainLoss:F5}  L0 {e.TrainL0:F2}  val loss {e.ValLoss:F5}  val L0 {e.ValL0:F2}");

    public static string Describe(TrainProgress p) =>
        string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F5}  L0 {p.L0:F2}  EV {p.ExplainedVariance:F4}  {p.TokensPerSecond:N0} tok/s");
}
