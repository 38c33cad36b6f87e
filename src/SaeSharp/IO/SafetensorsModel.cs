using System.Text.Json;
using SaeSharp.Tensors;

namespace SaeSharp.IO;

/// <summary>
/// The weights of a Hugging Face model folder, read by tensor name whether they sit in one
/// <c>model.safetensors</c> or in shards listed by <c>model.safetensors.index.json</c> (<c>weight_map</c>: tensor
/// name → shard file). Every shard is opened and validated up front, and every name in the index is checked
/// against its shard, so a broken folder fails at Open with a message naming the index and the shard.
/// </summary>
public sealed class SafetensorsModel : ITensorSource
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, SafetensorsFile> _byTensor;
    private readonly List<SafetensorsFile> _shards;

    /// <summary>The single file or the index file the tensors were found through.</summary>
    public string Path { get; }
    public IReadOnlyList<string> Names { get; }
    /// <summary>The opened shard files (one for an unsharded model).</summary>
    public IReadOnlyList<SafetensorsFile> Shards => _shards;

    private SafetensorsModel(string path, List<SafetensorsFile> shards, Dictionary<string, SafetensorsFile> byTensor, List<string> names)
    {
        Path = path; _shards = shards; _byTensor = byTensor; Names = names;
    }

    /// <summary>
    /// Opens a model folder (model.safetensors preferred, as Hugging Face does, else model.safetensors.index.json),
    /// or a path naming a .safetensors file or an index .json file directly.
    /// </summary>
    public static SafetensorsModel Open(string path)
    {
        if (Directory.Exists(path))
        {
            string single = System.IO.Path.Combine(path, SingleFileName), index = System.IO.Path.Combine(path, IndexFileName);
            if (File.Exists(single)) return OpenSingle(single);
            if (File.Exists(index)) return OpenIndex(index);
            throw new FileNotFoundException($"{path}: model folder has neither {SingleFileName} nor {IndexFileName}", single);
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"model weights not found: {path}", path);
        return path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? OpenIndex(path) : OpenSingle(path);
    }

    private static SafetensorsModel OpenSingle(string file)
    {
        var f = SafetensorsFile.Open(file);
        return new SafetensorsModel(file, [f], f.Names.ToDictionary(n => n, _ => f, StringComparer.Ordinal), f.Names.ToList());
    }

    private static InvalidDataException BadIndex(string index, string problem) => new($"{index}: not a valid safetensors index: {problem}");

    private static SafetensorsModel OpenIndex(string index)
    {
        var fileInfo = new FileInfo(index);
        // An index lists names and file names only; anything this large is not one.
        if (fileInfo.Length > SafetensorsFile.MaxHeaderBytes) throw BadIndex(index, $"file is {fileInfo.Length} bytes, over the {SafetensorsFile.MaxHeaderBytes}-byte limit");
        var weightMap = new List<(string Tensor, string Shard)>();
        try
        {
            var bytes = File.ReadAllBytes(index);
            // Invalid UTF-8 would otherwise surface as InvalidOperationException when a string is decoded.
            if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw BadIndex(index, "not valid JSON (invalid UTF-8)");
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw BadIndex(index, "top level is not a JSON object");
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw BadIndex(index, "missing object 'weight_map' (tensor name -> shard file)");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw BadIndex(index, $"weight_map['{p.Name}'] is not a file name string");
                if (!seen.Add(p.Name)) throw BadIndex(index, $"tensor '{p.Name}' appears twice in weight_map");
                string shard = p.Value.GetString()!;
                // Shards live beside the index; a path here could read files outside the model folder.
                if (shard.Length == 0 || shard != System.IO.Path.GetFileName(shard) || shard is "." or ".." || shard.Contains('\\'))
                    throw BadIndex(index, $"weight_map['{p.Name}'] = '{shard}' is not a plain file name");
                weightMap.Add((p.Name, shard));
            }
        }
        catch (JsonException e) { throw BadIndex(index, $"not valid JSON ({e.Message})"); }

        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(index))!;
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            var byTensor = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var (tensor, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    string shardPath = System.IO.Path.Combine(dir, shardName);
                    if (!File.Exists(shardPath))
                        throw new FileNotFoundException($"{index}: shard '{shardName}' (holding tensor '{tensor}') not found at {shardPath}", shardPath);
                    shard = SafetensorsFile.Open(shardPath);
                    shards[shardName] = shard;
                }
                if (!shard.Contains(tensor))
                    throw new InvalidDataException($"{index}: weight_map puts tensor '{tensor}' in shard '{shardName}', but {shard.Path} has no such tensor");
                byTensor[tensor] = shard;
            }
            return new SafetensorsModel(index, shards.Values.ToList(), byTensor, weightMap.Select(w => w.Tensor).ToList());
        }
        catch
        {
            foreach (var s in shards.Values) s.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byTensor.ContainsKey(name);

    private SafetensorsFile Shard(string name) =>
        _byTensor.TryGetValue(name, out var f) ? f
        : throw new KeyNotFoundException($"{Path}: no tensor named '{name}' (has: {string.Join(", ", Names.Take(20))}{(Names.Count > 20 ? ", ..." : "")})");

    /// <summary>The shard file holding <paramref name="name"/>.</summary>
    public string ShardPath(string name) => Shard(name).Path;

    public SafetensorsEntry Entry(string name) => Shard(name).Entry(name);
    public Tensor ReadFloat32(string name) => Shard(name).ReadFloat32(name);
    public Tensor ReadFloat32(string name, params int[] expectedShape) => Shard(name).ReadFloat32(name, expectedShape);
    public double[] ReadFloat64(string name) => Shard(name).ReadFloat64(name);
    public long[] ReadInt64(string name) => Shard(name).ReadInt64(name);
    public int[] ReadInt32(string name) => Shard(name).ReadInt32(name);
    public byte[] RawBytes(string name) => Shard(name).RawBytes(name);

    public void Dispose()
    {
        foreach (var s in _shards) s.Dispose();
    }
}
