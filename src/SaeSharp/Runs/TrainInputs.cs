using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Models;

namespace SaeSharp.Runs;

/// <summary>Where `saesharp train` reads activations from.</summary>
public static class TrainInputs
{
    /// <summary>
    /// The activation source named by exactly one of <paramref name="activations"/> (.npy), <paramref name="cache"/>
    /// and <paramref name="model"/> (streamed through an <see cref="ActivationStore"/>), the SAELens metadata it
    /// contributes to cfg.json, and the command-line flags that name it again for --resume.
    /// </summary>
    public static (IActivationSource Source, JsonObject Metadata, string Args) Open(TrainSettings s, string? activations, string? cache, string? model,
        string? hook, string? dataset, string? tokensFile)
    {
        int given = new[] { activations, cache, model }.Count(v => v is not null);
        if (given != 1) throw new ArgumentException("give exactly one activation source: --activations FILE.npy, --cache DIR, or --model DIR with --hook and --dataset");
        if (model is null && (hook ?? dataset ?? tokensFile) is not null) throw new ArgumentException("--hook, --dataset and --tokens-file go with --model");
        if (activations is not null)
        {
            return (new InMemoryActivationSource(ReadActivations(activations), s.Seed + 1), new JsonObject { ["dataset_path"] = Path.GetFullPath(activations) }, $"--activations {activations}");
        }
        if (cache is not null)
        {
            var src = new CachedActivationSource(cache, s.Seed + 1);
            var manifest = ActivationCache.ReadManifest(cache)!;
            return (src, new JsonObject { ["hook_name"] = manifest.Hook, ["cached_activations_path"] = Path.GetFullPath(cache) }, $"--cache {cache}");
        }
        if (hook is null) throw new ArgumentException("--model needs --hook (e.g. blocks.0.hook_resid_post)");
        var m = HookedTransformer.Load(model!);
        var docs = ModelInputs.Documents(tokensFile, dataset, model!, addBos: false); // the batcher places BOS
        var contexts = ModelInputs.Contexts(docs, m.Config, s.ContextSize, s.PrependBos, s.SequenceSeparatorToken);
        var exclude = s.ExcludeSpecialTokens ? ActivationStore.SpecialTokens(m.Config) : null;
        var select = new HookSelection(s.SeqposStart, s.SeqposEnd, s.HookHeadIndex);
        var store = new ActivationStore(m, hook, contexts, s.ContextSize, s.StoreBatchSizePrompts, s.NBatchesInBuffer, s.Seed + 1, exclude, select: select);
        string datasetPath = Path.GetFullPath(dataset ?? tokensFile!);
        var meta = new JsonObject
        {
            ["model_name"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model!))),
            ["model_path"] = Path.GetFullPath(model!),
            ["model_class_name"] = "HookedTransformer",
            ["hook_name"] = hook,
            ["hook_head_index"] = s.HookHeadIndex,
            ["seqpos_slice"] = new JsonArray(s.SeqposStart, s.SeqposEnd),
            ["context_size"] = s.ContextSize,
            ["prepend_bos"] = s.PrependBos,
            ["sequence_separator_token"] = s.SequenceSeparatorToken,
            ["exclude_special_tokens"] = s.ExcludeSpecialTokens,
            ["dataset_path"] = datasetPath,
        };
        string args = $"--model {model} --hook {hook} " + (dataset is not null ? $"--dataset {dataset}" : $"--tokens-file {tokensFile}");
        return (store, meta, args);
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
