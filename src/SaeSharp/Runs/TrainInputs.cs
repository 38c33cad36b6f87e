using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Runs;

/// <summary>Where `saesharp train` reads activations from.</summary>
public static class TrainInputs
{
    /// <summary>
    /// The training data named by exactly one of <paramref name="activations"/> (.npy), <paramref name="cache"/>
    /// and <paramref name="model"/> (streamed through an <see cref="ActivationStore"/> with the model's kernels on
    /// <paramref name="compute"/>), with what identifies it and the SAELens metadata it contributes to cfg.json.
    /// A model stream reads <see cref="TrainSettings.HookName"/> and, for a transcoder, <see cref="TrainSettings.HookNameOut"/>
    /// from the same forward, side by side in each row (<see cref="TrainData.Layout"/>).
    /// </summary>
    /// <param name="model">A model folder or llama2.c .bin, or the id of a model in the Hugging Face cache (see <see cref="HuggingFaceCache.Locate"/>).</param>
    /// <param name="allowPartialCache">Train on a cache whose writing was interrupted (refused otherwise).</param>
    /// <param name="revision">With a Hugging Face id: the branch, tag or commit of the snapshot (main by default).</param>
    /// <param name="hubDirectory">The Hugging Face hub cache; by default the one the process environment names (<see cref="HuggingFaceCache.HubDirectory"/>).</param>
    public static TrainData Open(TrainSettings s, Compute compute, string? activations, string? cache, string? model,
        string? dataset, string? tokensFile, bool allowPartialCache = false, string? revision = null, string? hubDirectory = null) =>
        Open(s, [s], compute, activations, cache, model, dataset, tokensFile, allowPartialCache, revision, hubDirectory);

    /// <summary>
    /// One stream for several SAEs (a sweep): the stream's settings (context windows, buffer, seed) from
    /// <paramref name="stream"/>, and a model stream over every hook any of <paramref name="saes"/> reads, each once.
    /// </summary>
    public static TrainData Open(TrainSettings stream, IReadOnlyList<TrainSettings> saes, Compute compute, string? activations, string? cache, string? model,
        string? dataset, string? tokensFile, bool allowPartialCache = false, string? revision = null, string? hubDirectory = null)
    {
        int given = new[] { activations, cache, model }.Count(v => v is not null);
        if (given != 1) throw new ArgumentException("give exactly one activation source: --activations FILE.npy, --cache DIR, or --model DIR with --hook and --dataset");
        if (model is null && (dataset ?? tokensFile) is not null) throw new ArgumentException("--dataset and --tokens-file go with --model");
        if (model is null && revision is not null) throw new ArgumentException("--revision goes with --model (a Hugging Face id)");
        if (activations is not null)
        {
            if (saes.FirstOrDefault(x => SaeRegistry.Get(x.Architecture).Transcoder) is { } t)
                throw new ArgumentException($"architecture: {t.Architecture} trains on paired activations of two hooks; give --model with --hook and --target-hook, or a paired --cache");
            return TrainData.FromArray(ReadActivations(activations), stream.Seed, activations);
        }
        if (cache is not null)
        {
            var src = new CachedActivationSource(cache, stream.Seed + 1, allowPartial: allowPartialCache);
            return new TrainData(src, new JsonObject { ["kind"] = "cache", ["path"] = Path.GetFullPath(cache) },
                new JsonObject { ["cached_activations_path"] = Path.GetFullPath(cache) }) { Layout = src.Layout, PairedTargetHook = src.Layout.Slots.Count == 2 ? src.Layout.Slots[1].Hook : null };
        }
        var hooks = new List<string>();
        foreach (var x in saes)
        {
            if (x.HookName is null) throw new ArgumentException("--model needs --hook (hook_name, e.g. blocks.0.hook_resid_post)");
            foreach (var h in ActivationStore.Hooks(x.HookName).Append(x.HookNameOut).OfType<string>())
                if (!hooks.Contains(h)) hooks.Add(h);
        }
        var location = HuggingFaceCache.Locate(model!, revision, hubDirectory ?? HuggingFaceCache.HubDirectory(Environment.GetEnvironmentVariable));
        var m = HookedTransformer.Load(location.Path, compute);
        foreach (var h in hooks)
            if (!m.HookNames.Contains(h))
                throw new ArgumentException($"hook '{h}' is not a hook point of {location.Name}; its hooks are named as TransformerLens's, e.g. {string.Join(", ", m.HookNames.Where(n => n.StartsWith("blocks.0.", StringComparison.Ordinal)))}");
        var docs = ModelInputs.Documents(tokensFile, dataset, location.Path, addBos: false); // the batcher places BOS
        var contexts = ModelInputs.Contexts(docs, m.Config, stream.Contexts);
        var exclude = stream.ExcludeSpecialTokens ? ActivationStore.SpecialTokens(m.Config) : null;
        var select = new HookSelection(stream.SeqposStart, stream.SeqposEnd, stream.HookHeadIndex);
        var layout = new HookLayout(hooks.Select(h => ((string?)h, ActivationStore.Width(m, h, select))));
        var store = new ActivationStore(m, string.Join(",", hooks), contexts, stream.Contexts.ContextSize, stream.Contexts.StoreBatchSizePrompts,
            stream.NBatchesInBuffer, stream.Seed + 1, exclude, select: select);
        string datasetPath = Path.GetFullPath(dataset ?? tokensFile!);
        var meta = new JsonObject
        {
            ["model_name"] = location.Name,
            ["model_path"] = Path.GetFullPath(location.Path),
            ["model_class_name"] = "HookedTransformer",
            ["hook_head_index"] = stream.HookHeadIndex,
            ["seqpos_slice"] = new JsonArray(stream.SeqposStart, stream.SeqposEnd),
            ["context_size"] = stream.Contexts.ContextSize,
            ["prepend_bos"] = stream.Contexts.PrependBos,
            ["sequence_separator_token"] = stream.Contexts.SequenceSeparatorToken,
            ["exclude_special_tokens"] = stream.ExcludeSpecialTokens,
            ["dataset_path"] = datasetPath,
        };
        if (location.Commit is not null)
        {
            meta["model_revision"] = location.Revision;
            meta["model_commit"] = location.Commit;
        }
        var identity = new JsonObject
        {
            ["kind"] = "model", ["model"] = Path.GetFullPath(location.Path),
            [dataset is not null ? "dataset" : "tokens_file"] = datasetPath,
        };
        return new TrainData(store, identity, meta) { Layout = layout };
    }

    /// <summary>A [n, d_in] float32 .npy matrix (drrik's activations.npy).</summary>
    public static Tensors.Tensor ReadActivations(string path)
    {
        var data = Npy.ReadFloat32(path);
        if (data.Rank != 2) throw new InvalidDataException($"{path}: expected a 2-D [n, d_in] array, got [{data.ShapeString}]");
        ActivationRows.EnsureFinite(data, path);
        return data;
    }
}
