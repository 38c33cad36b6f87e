using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using SaeSharp.Tensors;

namespace SaeSharp.IO;

/// <summary>Element types of safetensors files that SaeSharp reads and writes.</summary>
public enum DType { F32, F16, BF16, F64, I32, I64, U8, I8, Bool }

public static class DTypes
{
    public static int Size(this DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.F64 or DType.I64 => 8,
        _ => 1,
    };

    public static bool TryParse(string s, out DType t)
    {
        switch (s)
        {
            case "F32": t = DType.F32; return true;
            case "F16": t = DType.F16; return true;
            case "BF16": t = DType.BF16; return true;
            case "F64": t = DType.F64; return true;
            case "I32": t = DType.I32; return true;
            case "I64": t = DType.I64; return true;
            case "U8": t = DType.U8; return true;
            case "I8": t = DType.I8; return true;
            case "BOOL": t = DType.Bool; return true;
            default: t = default; return false;
        }
    }

    public static string Name(this DType t) => t == DType.Bool ? "BOOL" : t.ToString();
}

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, DType DType, int[] Shape, long Begin, long End)
{
    public long ElementCount
    {
        get { long n = 1; foreach (int d in Shape) n *= d; return n; }
    }
}

/// <exception cref="InvalidDataException">The file is not a valid safetensors file; the message names it and the problem.</exception>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Headers larger than this are refused (the format's own reference implementation uses 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly Dictionary<string, SafetensorsEntry> _entries;
    private readonly long _dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensor names in file (offset) order.</summary>
    public IReadOnlyList<string> Names { get; }

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, Dictionary<string, SafetensorsEntry> entries,
        IReadOnlyDictionary<string, string> metadata, long dataStart)
    {
        Path = path; _map = map; _view = view; _entries = entries; Metadata = metadata; _dataStart = dataStart;
        Names = entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.Name, StringComparer.Ordinal).Select(e => e.Name).ToList();
    }

    /// <summary>Opens and validates <paramref name="path"/>; tensor data is memory-mapped and read on demand.</summary>
    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file not found: {path}", path);
        long fileLength = new FileInfo(path).Length;
        Span<byte> lenBytes = stackalloc byte[8];
        byte[] headerBytes;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            if (fileLength < 8) throw Bad(path, $"file is {fileLength} bytes, shorter than the 8-byte header length");
            fs.ReadExactly(lenBytes);
            ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (headerLen > (ulong)(fileLength - 8)) throw Bad(path, $"header length {headerLen} runs past the end of the file ({fileLength} bytes)");
            if (headerLen > MaxHeaderBytes) throw Bad(path, $"header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
            headerBytes = new byte[(int)headerLen];
            fs.ReadExactly(headerBytes);
        }
        long dataStart = 8 + headerBytes.Length;
        long dataLength = fileLength - dataStart;
        var (entries, metadata) = ParseHeader(path, headerBytes, dataLength);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        if (fileLength > 0 && dataLength > 0)
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);
        }
        return new SafetensorsFile(path, map, view, entries, metadata, dataStart);
    }

    private static InvalidDataException Bad(string path, string problem) => new($"{path}: not a valid safetensors file: {problem}");

    private static (Dictionary<string, SafetensorsEntry>, IReadOnlyDictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Bad(path, $"header is not valid JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "header is not a JSON object");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "__metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad(path, $"__metadata__ value '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
            }
            CheckNoOverlap(path, entries.Values);
            return (entries, metadata);
        }
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Bad(path, $"tensor '{name}': entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw Bad(path, $"tensor '{name}': missing string 'dtype'");
        if (!DTypes.TryParse(dt.GetString()!, out var dtype))
            throw Bad(path, $"tensor '{name}': unsupported dtype '{dt.GetString()}' (expected F32, F16, BF16, F64, I32, I64, U8, I8 or BOOL)");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"tensor '{name}': missing array 'shape'");
        var shape = new List<int>();
        long count = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0 || v > int.MaxValue)
                throw Bad(path, $"tensor '{name}': shape entry {d} is not a non-negative integer");
            shape.Add((int)v);
            count = v == 0 ? 0 : (count > long.MaxValue / v ? long.MaxValue : count * v);
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{name}': 'data_offsets' must be [begin, end]");
        long begin = ReadOffset(path, name, off[0]), end = ReadOffset(path, name, off[1]);
        if (end < begin) throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength) throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] run past the data section ({dataLength} bytes)");
        long expected = count > long.MaxValue / 8 ? long.MaxValue : count * dtype.Size();
        if (end - begin != expected)
            throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype.Name()} needs {expected} bytes but data_offsets span {end - begin}");
        return new SafetensorsEntry(name, dtype, shape.ToArray(), begin, end);
    }

    private static long ReadOffset(string path, string name, JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x) || x < 0)
            throw Bad(path, $"tensor '{name}': data offset {v} is not a non-negative integer");
        return x;
    }

    private static void CheckNoOverlap(string path, IEnumerable<SafetensorsEntry> entries)
    {
        SafetensorsEntry? prev = null;
        foreach (var e in entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin))
        {
            if (prev is not null && e.Begin < prev.End)
                throw Bad(path, $"tensors '{prev.Name}' [{prev.Begin}, {prev.End}) and '{e.Name}' [{e.Begin}, {e.End}) overlap");
            prev = e;
        }
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public SafetensorsEntry Entry(string name) =>
        _entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor named '{name}' (has: {string.Join(", ", Names.Take(20))}{(Names.Count > 20 ? ", ..." : "")})");

    /// <summary>Reads a tensor as float32, converting from F16, BF16, F64, I32, I64, U8, I8 or BOOL.</summary>
    public Tensor ReadFloat32(string name)
    {
        var e = Entry(name);
        var t = Tensor.Uninitialized(e.Shape);
        var bytes = RawBytes(e);
        ConvertToFloat(e.DType, bytes, t.Span);
        return t;
    }

    /// <summary>Reads a tensor as float32 and checks its shape, naming the tensor when it differs.</summary>
    public Tensor ReadFloat32(string name, params int[] expectedShape)
    {
        var e = Entry(name);
        if (!e.Shape.AsSpan().SequenceEqual(expectedShape))
            throw new InvalidDataException($"{Path}: tensor '{name}' has shape [{string.Join(", ", e.Shape)}], expected [{string.Join(", ", expectedShape)}]");
        return ReadFloat32(name);
    }

    /// <summary>Reads an integer tensor (I64, I32, U8, I8, BOOL) as int64.</summary>
    public long[] ReadInt64(string name)
    {
        var e = Entry(name);
        var bytes = RawBytes(e);
        var result = new long[e.ElementCount];
        switch (e.DType)
        {
            case DType.I64: MemoryMarshal.Cast<byte, long>(bytes).CopyTo(result); break;
            case DType.I32: { var s = MemoryMarshal.Cast<byte, int>(bytes); for (int i = 0; i < s.Length; i++) result[i] = s[i]; break; }
            case DType.U8: case DType.Bool: for (int i = 0; i < bytes.Length; i++) result[i] = bytes[i]; break;
            case DType.I8: for (int i = 0; i < bytes.Length; i++) result[i] = (sbyte)bytes[i]; break;
            default: throw new InvalidDataException($"{Path}: tensor '{name}' is {e.DType.Name()}, not an integer type");
        }
        return result;
    }

    /// <summary>The raw little-endian bytes of a tensor (a copy out of the mapping).</summary>
    public byte[] RawBytes(string name) => RawBytes(Entry(name));

    private byte[] RawBytes(SafetensorsEntry e)
    {
        long n = e.End - e.Begin;
        if (n > Array.MaxLength) throw new InvalidDataException($"{Path}: tensor '{e.Name}' is too large to read ({n} bytes)");
        var bytes = GC.AllocateUninitializedArray<byte>((int)n);
        if (n > 0) _view!.ReadArray(_dataStart + e.Begin, bytes, 0, (int)n);
        return bytes;
    }

    internal static void ConvertToFloat(DType dtype, ReadOnlySpan<byte> bytes, Span<float> dst)
    {
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst); break;
            case DType.F16: System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), dst); break;
            case DType.BF16:
                {
                    var s = MemoryMarshal.Cast<byte, ushort>(bytes);
                    for (int i = 0; i < s.Length; i++) dst[i] = BitConverter.UInt32BitsToSingle((uint)s[i] << 16);
                    break;
                }
            case DType.F64: { var s = MemoryMarshal.Cast<byte, double>(bytes); for (int i = 0; i < s.Length; i++) dst[i] = (float)s[i]; break; }
            case DType.I64: { var s = MemoryMarshal.Cast<byte, long>(bytes); for (int i = 0; i < s.Length; i++) dst[i] = s[i]; break; }
            case DType.I32: { var s = MemoryMarshal.Cast<byte, int>(bytes); for (int i = 0; i < s.Length; i++) dst[i] = s[i]; break; }
            case DType.U8: case DType.Bool: for (int i = 0; i < bytes.Length; i++) dst[i] = bytes[i]; break;
            case DType.I8: for (int i = 0; i < bytes.Length; i++) dst[i] = (sbyte)bytes[i]; break;
        }
    }

    public void Dispose()
    {
        _view?.Dispose();
        _map?.Dispose();
    }
}

/// <summary>Collects tensors and writes them as one safetensors file (atomically).</summary>
public sealed class SafetensorsWriter
{
    private readonly List<(string Name, DType DType, int[] Shape, byte[] Bytes)> _items = new();
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    public SafetensorsWriter AddMetadata(string key, string value) { _metadata[key] = value; return this; }

    /// <summary>Adds a float tensor, stored as F32 (default), F16, BF16 or F64.</summary>
    public SafetensorsWriter Add(string name, Tensor t, DType dtype = DType.F32)
    {
        var src = t.Span;
        byte[] bytes = new byte[(long)src.Length * dtype.Size()];
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.AsBytes(src).CopyTo(bytes); break;
            case DType.F16: System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(bytes.AsSpan())); break;
            case DType.BF16:
                {
                    var d = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                    for (int i = 0; i < src.Length; i++) d[i] = FloatToBFloat16(src[i]);
                    break;
                }
            case DType.F64: { var d = MemoryMarshal.Cast<byte, double>(bytes.AsSpan()); for (int i = 0; i < src.Length; i++) d[i] = src[i]; break; }
            default: throw new ArgumentException($"cannot store float tensor '{name}' as {dtype.Name()}");
        }
        return AddRaw(name, dtype, t.Shape.ToArray(), bytes);
    }

    public SafetensorsWriter AddInt64(string name, ReadOnlySpan<long> values, params int[] shape) =>
        AddRaw(name, DType.I64, shape, MemoryMarshal.AsBytes(values).ToArray());

    public SafetensorsWriter AddInt32(string name, ReadOnlySpan<int> values, params int[] shape) =>
        AddRaw(name, DType.I32, shape, MemoryMarshal.AsBytes(values).ToArray());

    public SafetensorsWriter AddRaw(string name, DType dtype, int[] shape, byte[] bytes)
    {
        if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved");
        if (_items.Any(i => i.Name == name)) throw new ArgumentException($"tensor '{name}' added twice");
        long count = 1;
        foreach (int d in shape) count *= d;
        if (count * dtype.Size() != bytes.Length)
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype.Name()} needs {count * dtype.Size()} bytes, got {bytes.Length}");
        _items.Add((name, dtype, (int[])shape.Clone(), bytes));
        return this;
    }

    /// <summary>Round-to-nearest-even float → bfloat16 (NaN stays NaN).</summary>
    public static ushort FloatToBFloat16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    public void Write(string path)
    {
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (_metadata.Count > 0) header["__metadata__"] = _metadata;
        long offset = 0;
        foreach (var it in _items)
        {
            header[it.Name] = new Dictionary<string, object>
            {
                ["dtype"] = it.DType.Name(),
                ["shape"] = it.Shape,
                ["data_offsets"] = new[] { offset, offset + it.Bytes.Length },
            };
            offset += it.Bytes.Length;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < padded; i++) headerBytes[i] = (byte)' ';
        AtomicFile.Write(path, s =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            s.Write(len);
            s.Write(headerBytes);
            foreach (var it in _items) s.Write(it.Bytes);
        });
    }
}
