using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Cli.Runs;

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
        s.Validate();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var rng = new Rng(s.Seed);
        var sae = SaeRegistry.Create(s.SaeConfig(source.Dim));
        bool resuming = File.Exists(Path.Combine(outDir, "checkpoints", "latest.json"));
        if (!resuming) AtomicFile.WriteAllText(Path.Combine(outDir, SettingsFile), JsonSerializer.Serialize(s, new JsonSerializerOptions { WriteIndented = true }));

        // The normalisation factor is estimated once and stored, so a resumed run scales exactly as before.
        double scale = 1;
        string normPath = Path.Combine(outDir, NormalizationFile);
        if (s.NormalizeActivations == "expected_average_only_in")
        {
            if (resuming && File.Exists(normPath))
                scale = JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(normPath))!["scaling_factor"];
            else
            {
                var sample = new List<Tensor>();
                for (int i = 0; i < s.NormalizationBatches; i++)
                {
                    var b = Tensor.Uninitialized(s.BatchSize, source.Dim);
                    if (!source.Next(b)) break;
                    sample.Add(b);
                }
                scale = Initialization.NormScalingFactor(sample);
                AtomicFile.WriteAllText(normPath, JsonSerializer.Serialize(new Dictionary<string, double> { ["scaling_factor"] = scale }));
            }
        }
        IActivationSource trainSource = scale == 1 ? source : new ScaledSource(source, (float)scale);

        float[]? bDec = null;
        if (s.BDecInit != "zeros" && !resuming)
        {
            var sample = Tensor.Uninitialized(Math.Min(s.BatchSize * 4, 16_384), source.Dim);
            if (!trainSource.Next(sample)) throw new InvalidDataException("the activation source ended before b_dec could be initialised");
            bDec = s.BDecInit switch
            {
                "mean" => Initialization.Mean(sample),
                "median" => Initialization.CoordinateMedian(sample),
                _ => Initialization.GeometricMedian(sample),
            };
        }
        SaeTrainable.Initialize(sae, rng, s.DecoderInitNorm, bDec);
        if (sae is JumpReluSae && s.UnitNormDecoder) throw new ArgumentException("unit_norm_decoder is only for architectures without a threshold");
        var trainable = new SaeTrainable(sae, s.LossOptions(), s.UnitNormDecoder);
        var trainer = new Trainer(trainable, trainSource, s.TrainerConfig(), outDir, compute);
        trainer.ResumeIfPossible();
        var summary = trainer.Run(cancel, progress);
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
        SaeFiles.Save(final, outDir, summary.Log10Density);
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

    public static string Describe(TrainProgress p) =>
        string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F5}  L0 {p.L0:F2}  EV {p.ExplainedVariance:F4}  {p.TokensPerSecond:N0} tok/s");
}
