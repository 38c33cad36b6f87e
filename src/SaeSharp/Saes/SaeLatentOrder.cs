using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.IO;

namespace SaeSharp.Saes;

/// <summary>
/// Saves an SAE folder with its latents in another order: new latent p is old latent order[p]. Every per-latent tensor
/// of sae_weights.safetensors (W_enc columns, b_enc, W_dec rows, thresholds, gates, magnitudes, any extra an architecture
/// has) and of sparsity.safetensors is permuted, found from its shape: the axes of length d_sae. When d_sae equals d_in
/// or d_out a shape alone is ambiguous and SAELens's layout decides (W_enc [d_in, d_sae], W_dec [d_sae, d_out], b_dec
/// and W_skip not per latent). Tensors keep their dtype and bytes; the result loads in SaeSharp and SAELens alike.
/// </summary>
public static class SaeLatentOrder
{
    /// <summary>The permutation, beside the weights: new latent p is latent order[p] of the SAE in source.</summary>
    public const string OrderFile = "latent_order.json";

    /// <summary>Known layouts for when a shape is ambiguous: the latent axis of a name, or −1 for tensors that have none.</summary>
    private static readonly Dictionary<string, int> KnownAxis = new(StringComparer.Ordinal)
    {
        ["W_enc"] = 1, ["W_dec"] = 0, ["b_dec"] = -1, ["W_skip"] = -1, ["topk_threshold"] = -1,
    };

    /// <summary>
    /// Writes <paramref name="source"/>'s SAE with its latents permuted into <paramref name="outDir"/> (cfg.json with
    /// <paramref name="note"/> added to its metadata as <c>latent_order</c>, the permuted weights and sparsity, and
    /// <see cref="OrderFile"/>).
    /// </summary>
    public static void Write(string source, IReadOnlyList<int> order, string outDir, JsonObject? note = null)
    {
        string cfgPath = Path.Combine(source, SaeFiles.ConfigFile);
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{source}: no {SaeFiles.ConfigFile} (not an SAE folder)", cfgPath);
        var config = SaeFiles.ConfigFromJson(File.ReadAllText(cfgPath), cfgPath);
        CheckPermutation(order, config.DSae, source);
        if (Path.GetFullPath(source) == Path.GetFullPath(outDir)) throw new ArgumentException($"{outDir}: write the reordered SAE to another folder than its source");
        var cfg = (JsonObject)JsonNode.Parse(File.ReadAllText(cfgPath))!;
        var meta = cfg["metadata"] as JsonObject ?? [];
        cfg["metadata"] = meta;
        meta["latent_order"] = note?.DeepClone() ?? new JsonObject();
        ((JsonObject)meta["latent_order"]!)["source"] = Path.GetFullPath(source);
        Directory.CreateDirectory(outDir);
        Permute(Path.Combine(source, SaeFiles.WeightsFile), Path.Combine(outDir, SaeFiles.WeightsFile), order, config);
        string sparsity = Path.Combine(source, SaeFiles.SparsityFile);
        if (File.Exists(sparsity)) Permute(sparsity, Path.Combine(outDir, SaeFiles.SparsityFile), order, config);
        var orderJson = new JsonObject { ["source"] = Path.GetFullPath(source), ["order"] = new JsonArray([.. order.Select(i => (JsonNode)i)]) };
        AtomicFile.WriteAllText(Path.Combine(outDir, OrderFile), orderJson.ToJsonString());
        AtomicFile.WriteAllText(Path.Combine(outDir, SaeFiles.ConfigFile), cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The axis of a tensor that indexes latents (−1: none), from its shape and, where that is ambiguous, its name.</summary>
    public static int LatentAxis(string name, IReadOnlyList<int> shape, SaeConfig config, string source)
    {
        var axes = Enumerable.Range(0, shape.Count).Where(a => shape[a] == config.DSae).ToList();
        if (axes.Count == 0 || config.DSae == 1) return -1;
        bool ambiguous = axes.Count > 1 || config.DIn == config.DSae || config.OutDim == config.DSae;
        if (!ambiguous) return axes[0];
        if (KnownAxis.TryGetValue(name, out int axis) && (axis < 0 || axis < shape.Count && shape[axis] == config.DSae)) return axis;
        if (shape.Count == 1 && name.StartsWith("b_", StringComparison.Ordinal) && name != "b_dec") return 0; // b_enc, b_gate, b_mag
        if (shape.Count == 1 && name is "threshold" or "log_threshold" or "r_mag" or "sparsity") return 0;
        throw new InvalidDataException($"{source}: cannot tell which axis of '{name}' [{string.Join(", ", shape)}] indexes the {config.DSae} latents (d_in {config.DIn}, d_out {config.OutDim})");
    }

    private static void Permute(string path, string outPath, IReadOnlyList<int> order, SaeConfig config)
    {
        using var f = SafetensorsFile.Open(path);
        var w = new SafetensorsWriter();
        foreach (var (k, v) in f.Metadata) w.AddMetadata(k, v);
        foreach (var name in f.Names)
        {
            var e = f.Entry(name);
            var bytes = f.RawBytes(name);
            int axis = LatentAxis(name, e.Shape, config, path);
            w.AddRaw(name, e.DType, e.Shape, axis < 0 ? bytes : PermuteAxis(bytes, e.Shape, axis, e.DType.Size(), order));
        }
        w.Write(outPath);
    }

    /// <summary>Row-major bytes with index i along <paramref name="axis"/> taken from index order[i].</summary>
    private static byte[] PermuteAxis(byte[] bytes, int[] shape, int axis, int elementSize, IReadOnlyList<int> order)
    {
        long outer = 1, inner = elementSize;
        for (int a = 0; a < axis; a++) outer *= shape[a];
        for (int a = axis + 1; a < shape.Length; a++) inner *= shape[a];
        int n = shape[axis];
        var result = new byte[bytes.Length];
        for (long o = 0; o < outer; o++)
            for (int i = 0; i < n; i++)
                Array.Copy(bytes, (o * n + order[i]) * inner, result, (o * n + i) * inner, inner);
        return result;
    }

    private static void CheckPermutation(IReadOnlyList<int> order, int dSae, string source)
    {
        if (order.Count != dSae) throw new ArgumentException($"{source}: a latent order of {order.Count} entries for an SAE of {dSae} latents");
        var seen = new bool[dSae];
        foreach (int i in order)
        {
            if (i < 0 || i >= dSae || seen[i]) throw new ArgumentException($"{source}: the latent order is not a permutation of 0..{dSae - 1} (entry {i})");
            seen[i] = true;
        }
    }
}
