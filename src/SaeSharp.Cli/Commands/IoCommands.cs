using System.CommandLine;
using System.Globalization;
using SaeSharp.IO;
using SaeSharp.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp inspect PATH`: what tensors a weights file holds (safetensors, HF model folder, or .npy).</summary>
public static class IoCommands
{
    public static Command Build()
    {
        var inspect = new Command("inspect", "List the tensors (dtype, shape) and metadata of a .safetensors file, a Hugging Face model folder or index, or a .npy file");
        var path = new Argument<string>("path") { Description = "A .safetensors file, a model folder, a model.safetensors.index.json, or a .npy file" };
        var stats = new Option<bool>("--stats") { Description = "Also print min, max, mean and standard deviation of each tensor" };
        inspect.Add(path);
        inspect.Add(stats);
        inspect.SetAction(p => Inspect(p.GetValue(path)!, p.GetValue(stats), p.InvocationConfiguration.Output));
        return inspect;
    }

    public static int Inspect(string path, bool stats, TextWriter output)
    {
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var h = Npy.ReadHeader(path);
            output.WriteLine($"{path}: .npy version {h.Version}.0, {h.Descr} {h.ShapeString}");
            if (stats) output.WriteLine("  " + Stats(Npy.ReadFloat32(path)));
            return 0;
        }
        using var source = SafetensorsModel.Open(path);
        long bytes = source.Shards.Sum(s => new FileInfo(s.Path).Length);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{source.Path}: {source.Names.Count} tensors in {source.Shards.Count} file(s), {bytes:N0} bytes"));
        foreach (var shard in source.Shards)
            foreach (var (k, v) in shard.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                output.WriteLine($"  metadata {k} = {v}");
        int width = source.Names.Count == 0 ? 0 : source.Names.Max(n => n.Length);
        int shapeWidth = source.Names.Count == 0 ? 0 : source.Names.Max(n => source.Entry(n).ShapeString.Length);
        foreach (var name in source.Names)
        {
            var e = source.Entry(name);
            string line = $"  {name.PadRight(width)}  {e.DType.Name(),-4}  {e.ShapeString.PadRight(shapeWidth)}";
            if (stats) line += "  " + Stats(source.ReadFloat32(name));
            output.WriteLine(line.TrimEnd());
        }
        return 0;
    }

    private static string Stats(Tensor t)
    {
        var s = t.Span;
        if (s.Length == 0) return "(empty)";
        // Two passes in float64, so millions of elements neither lose the mean nor cancel in the variance.
        double sum = 0;
        foreach (float v in s) sum += v;
        double mean = sum / s.Length, ss = 0;
        foreach (float v in s) ss += (v - mean) * (v - mean);
        double std = Math.Sqrt(ss / s.Length);
        return string.Create(CultureInfo.InvariantCulture,
            $"min {TensorPrimitives.Min(s):G6}  max {TensorPrimitives.Max(s):G6}  mean {mean:G6}  std {std:G6}");
    }
}
