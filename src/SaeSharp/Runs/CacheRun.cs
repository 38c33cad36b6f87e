using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Runs;

/// <summary>`saesharp cache`'s settings; the context keys are the same as a training run's.</summary>
public sealed record CacheSettings
{
    /// <summary>Context windows and model batching, as `train --model` builds them (context_size, prepend_bos, ...).</summary>
    [SettingsGroup]
    public ContextSettings Contexts { get; set; } = new();
    /// <summary>Tokens to cache (whole context windows: ⌊tokens / context_size⌋ of them).</summary>
    public long Tokens { get; set; }
    /// <summary>Storage type of the activations: f32 or bf16.</summary>
    public string Dtype { get; set; } = "f32";
    /// <summary>Context windows per shard file.</summary>
    public int ContextsPerShard { get; set; } = 256;

    public DType StorageType() => Dtype.ToLowerInvariant() switch
    {
        "f32" => DType.F32,
        "bf16" => DType.BF16,
        var s => throw new ArgumentException($"dtype: expected f32 or bf16, got '{s}'"),
    };

    public void Validate()
    {
        Contexts.Validate();
        StorageType();
        if (Tokens < Contexts.ContextSize) throw new ArgumentException($"tokens must be at least context_size ({Contexts.ContextSize}), got {Tokens}");
        if (ContextsPerShard < 1) throw new ArgumentException($"contexts_per_shard must be at least 1, got {ContextsPerShard}");
    }
}

/// <summary>The outcome of a cache run: its manifest and whether cancellation stopped it before the last shard.</summary>
public sealed record CacheRunResult(CacheManifest Manifest, bool Interrupted);

/// <summary>
/// Runs a model over a dataset and writes the activations at a hook into a sharded cache (<see cref="ActivationCache"/>):
/// resumable (a rerun with the same settings skips finished shards), refused where a cache with other settings is.
/// With <c>targetHook</c> the cache is paired: a transcoder's input and target from the same forward.
/// </summary>
public static class CacheRun
{
    public static CacheRunResult Execute(CacheSettings s, string modelPath, string hook, string? dataset, string? tokensFile, string outDir,
        Compute compute, CancellationToken cancel = default, string? targetHook = null)
    {
        s.Validate();
        var model = HookedTransformer.Load(modelPath, compute);
        var docs = ModelInputs.Documents(tokensFile, dataset, modelPath, addBos: false); // the batcher places BOS per context
        var windows = ModelInputs.Contexts(docs, model.Config, s.Contexts).Take((int)Math.Min(int.MaxValue, s.Tokens / s.Contexts.ContextSize)).ToList();
        if (windows.Count == 0) throw new InvalidDataException($"{dataset ?? tokensFile}: holds fewer than {s.Contexts.ContextSize} tokens");
        var recorded = ConfigBinder.ToJson(s);
        recorded["model"] = Path.GetFullPath(modelPath);
        recorded[dataset is not null ? "dataset" : "tokens_file"] = Path.GetFullPath(dataset ?? tokensFile!);
        var manifest = ActivationCache.Write(outDir, model, hook, windows, s.ContextsPerShard, s.Contexts.StoreBatchSizePrompts, s.StorageType(),
            settings: recorded, cancel: cancel, hookOut: targetHook);
        return new CacheRunResult(manifest, !manifest.Complete && cancel.IsCancellationRequested);
    }
}
