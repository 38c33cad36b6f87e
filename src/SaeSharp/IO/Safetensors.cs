using System.Buffers;
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using SaeSharp.Tensors;

namespace SaeSharp.IO;

/// <summary>Element types of safetensors (and .npy) files that SaeSharp reads and writes.</summary>
public enum DType { F32, F16, BF16, F64, I32, I64, U8, I8, Bool }

public static class DTypes
{
    /// <summary>Writes a float tensor to a stream in <paramref name="dtype"/>, converting in chunks (safetensors and .npy data).</summary>
    internal static void WriteConverted(Stream s, Tensor t, DType dtype)
    {
        var src = t.Span;
        if (dtype == DType.F32)
        {
            // Sliced: a byte view of more than 2^29 floats would overflow a span's length.
            for (int i = 0; i < src.Length; i += 1 << 28) s.Write(MemoryMarshal.AsBytes(src.Slice(i, Math.Min(1 << 28, src.Length - i))));
            return;
        }
        const int chunk = 1 << 16;
        var buf = ArrayPool<byte>.Shared.Rent(chunk * dtype.Size());
        try
        {
            for (int i = 0; i < src.Length; i += chunk)
            {
                int m = Math.Min(chunk, src.Length - i);
                var b = buf.AsSpan(0, m * dtype.Size());
                DTypes.FromFloat32(dtype, src.Slice(i, m), b);
                s.Write(b);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    public static int Size(this DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.F64 or DType.I64 => 8,
        _ => 1,
    };

    public static bool IsFloat(this DType t) => t is DType.F32 or DType.F16 or DType.BF16 or DType.F64;

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

    /// <summary>Round-to-nearest-even float → bfloat16 bits (NaN stays a quiet NaN with its sign; overflow goes to ±Inf).</summary>
    public static ushort FloatToBFloat16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>bfloat16 bits → float (exact: bf16 is the top half of a float32).</summary>
    public static float BFloat16ToFloat(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    /// <summary>Converts little-endian elements of <paramref name="dtype"/> to float32; <paramref name="dst"/> has one slot per element.</summary>
    public static void ToFloat32(DType dtype, ReadOnlySpan<byte> bytes, Span<float> dst)
    {
        if (bytes.Length != dst.Length * dtype.Size())
            throw new ArgumentException($"{bytes.Length} bytes of {dtype.Name()} do not hold {dst.Length} elements");
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst); break;
            case DType.F16: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), dst); break;
            case DType.BF16: BFloat16ToFloat(MemoryMarshal.Cast<byte, ushort>(bytes), dst); break;
            case DType.F64: TensorPrimitives.ConvertTruncating(MemoryMarshal.Cast<byte, double>(bytes), dst); break;
            case DType.I64: { var s = MemoryMarshal.Cast<byte, long>(bytes); for (int i = 0; i < s.Length; i++) dst[i] = s[i]; break; }
            case DType.I32: { var s = MemoryMarshal.Cast<byte, int>(bytes); for (int i = 0; i < s.Length; i++) dst[i] = s[i]; break; }
            case DType.U8: case DType.Bool: for (int i = 0; i < bytes.Length; i++) dst[i] = bytes[i]; break;
            case DType.I8: for (int i = 0; i < bytes.Length; i++) dst[i] = (sbyte)bytes[i]; break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    /// <summary>Converts float32 to little-endian elements of a float dtype (F32, F16, BF16, F64), rounding to nearest even.</summary>
    public static void FromFloat32(DType dtype, ReadOnlySpan<float> src, Span<byte> bytes)
    {
        if (bytes.Length != src.Length * dtype.Size())
            throw new ArgumentException($"{bytes.Length} bytes of {dtype.Name()} do not hold {src.Length} elements");
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.AsBytes(src).CopyTo(bytes); break;
            case DType.F16: TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(bytes)); break;
            case DType.BF16: { var d = MemoryMarshal.Cast<byte, ushort>(bytes); for (int i = 0; i < src.Length; i++) d[i] = FloatToBFloat16(src[i]); break; }
            case DType.F64: { var d = MemoryMarshal.Cast<byte, double>(bytes); for (int i = 0; i < src.Length; i++) d[i] = src[i]; break; }
            default: throw new ArgumentException($"cannot store float32 values as {dtype.Name()} (expected F32, F16, BF16 or F64)");
        }
    }

    private static void BFloat16ToFloat(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var u = MemoryMarshal.Cast<float, uint>(dst);
            for (; i <= src.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                Vector.Widen(new Vector<ushort>(src[i..]), out var lo, out var hi);
                (lo << 16).CopyTo(u[i..]);
                (hi << 16).CopyTo(u[(i + Vector<uint>.Count)..]);
            }
        }
        for (; i < src.Length; i++) dst[i] = BFloat16ToFloat(src[i]);
    }
}

/// <summary>One tensor's entry in a safetensors header; offsets are relative to the data section.</summary>
public sealed record SafetensorsEntry(string Name, DType DType, int[] Shape, long Begin, long End)
{
    public long ElementCount
    {
        get { long n = 1; foreach (int d in Shape) n *= d; return n; }
    }

    public string ShapeString => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>Named tensors readable by name: one safetensors file (<see cref="SafetensorsFile"/>) or a sharded
/// Hugging Face folder (<see cref="SafetensorsModel"/>). Model and SAE loaders take this.</summary>
public interface ITensorSource : IDisposable
{
    /// <summary>Where the tensors come from (file or index path), for error messages.</summary>
    string Path { get; }
    IReadOnlyList<string> Names { get; }
    bool Contains(string name);
    /// <exception cref="KeyNotFoundException">No tensor has that name; the message names the source.</exception>
    SafetensorsEntry Entry(string name);
    /// <summary>Reads a tensor as float32, converting from any stored dtype.</summary>
    Tensor ReadFloat32(string name);
    /// <summary>Reads a tensor as float32 after checking its shape (InvalidDataException naming the tensor when it differs).</summary>
    Tensor ReadFloat32(string name, params int[] expectedShape);
    /// <summary>Reads a float tensor (F64 exactly, F32/F16/BF16 widened) or an integer tensor as float64.</summary>
    double[] ReadFloat64(string name);
    /// <summary>Reads an integer tensor (I64, I32, U8, I8, BOOL) as int64.</summary>
    long[] ReadInt64(string name);
    /// <summary>Reads an integer tensor as int32; I64 values outside the int32 range are an error.</summary>
    int[] ReadInt32(string name);
    /// <summary>The raw little-endian bytes of a tensor (a copy).</summary>
    byte[] RawBytes(string name);
}

/// <summary>
/// A validated, memory-mapped safetensors file. Opening reads and checks only the header (size limits, JSON shape,
/// dtypes, shapes against byte spans, offsets inside the file, no overlaps), so no allocation is ever larger than
/// the file itself; tensor data is read from the mapping on demand. Safe to read from several threads.
/// Every Read copies out of the mapping, so results outlive Dispose. The file stays mapped until Dispose: another
/// process truncating it in place meanwhile is the one corruption no check can catch (writers here replace files
/// by rename, which leaves an open mapping intact).
/// </summary>
/// <exception cref="InvalidDataException">The file is not a valid safetensors file; the message names it and the problem.</exception>
public sealed unsafe class SafetensorsFile : ITensorSource
{
    /// <summary>Headers larger than this are refused (the format's own reference implementation uses 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;
    /// <summary>
    /// Tensors per file above this are refused before any entry is built (each costs hundreds of bytes; the largest
    /// real checkpoints hold a few thousand per shard), so a valid but hostile 100 MB header cannot take gigabytes.
    /// </summary>
    public const int MaxTensors = 131_072;
    /// <summary>Longest tensor name, in header bytes, accepted (real names are tens of bytes).</summary>
    public const int MaxNameBytes = 4096;

    // Conversions run in chunks of this many elements so a multi-GB tensor never needs one span over > 2 GB of bytes.
    private const int ChunkElements = 1 << 24;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _data; // start of the data section inside the mapping (null when it is empty)
    private readonly Dictionary<string, SafetensorsEntry> _entries;
    private bool _disposed;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensor names in file (offset) order.</summary>
    public IReadOnlyList<string> Names { get; }
    /// <summary>Byte offset of the data section (8 + header length).</summary>
    public long DataStart { get; }

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* data,
        Dictionary<string, SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata, long dataStart)
    {
        Path = path; _map = map; _view = view; _data = data; _entries = entries; Metadata = metadata; DataStart = dataStart;
        Names = entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.Name, StringComparer.Ordinal).Select(e => e.Name).ToList();
    }

    /// <summary>Opens and validates <paramref name="path"/>; tensor data is memory-mapped and read on demand.</summary>
    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file not found: {path}", path);
        // One handle for validation and mapping, so a file replaced in between cannot be mapped unvalidated.
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            long fileLength = fs.Length;
            if (fileLength < 8) throw Bad(path, $"file is {fileLength} bytes, shorter than the 8-byte header length");
            Span<byte> lenBytes = stackalloc byte[8];
            fs.ReadExactly(lenBytes);
            ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (headerLen > (ulong)(fileLength - 8)) throw Bad(path, $"header length {headerLen} runs past the end of the file ({fileLength} bytes)");
            if (headerLen > MaxHeaderBytes) throw Bad(path, $"header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
            var headerBytes = new byte[(int)headerLen];
            fs.ReadExactly(headerBytes);
            long dataStart = 8 + headerBytes.Length;
            long dataLength = fileLength - dataStart;
            var (entries, metadata) = ParseHeader(path, headerBytes, dataLength);
            if (dataLength == 0)
            {
                fs.Dispose();
                return new SafetensorsFile(path, null, null, null, entries, metadata, dataStart);
            }
            map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);
            byte* basePtr = null;
            // Held until Dispose: spans over the mapping are then plain pointer reads, no copies through the accessor.
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            return new SafetensorsFile(path, map, view, basePtr + view.PointerOffset + dataStart, entries, metadata, dataStart);
        }
        catch
        {
            view?.Dispose();
            map?.Dispose();
            fs.Dispose();
            throw;
        }
    }

    private static InvalidDataException Bad(string path, string problem) => new($"{path}: not a valid safetensors file: {problem}");

    private static (Dictionary<string, SafetensorsEntry>, IReadOnlyDictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        // JsonDocument checks UTF-8 only when strings are decoded, which would surface later as InvalidOperationException.
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw Bad(path, "header is not valid JSON (invalid UTF-8)");
        JsonDocument doc;
        try
        {
            CheckHeaderSize(path, header);
            doc = JsonDocument.Parse(header);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or DecoderFallbackException)
        { throw Bad(path, $"header is not valid JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, $"header is a JSON {doc.RootElement.ValueKind}, expected an object");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (sawMetadata) throw Bad(path, "__metadata__ appears twice");
                    sawMetadata = true;
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "__metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad(path, $"__metadata__ value '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                // JSON allows repeated keys; a repeated tensor name would silently hide one tensor, so refuse it.
                if (entries.ContainsKey(prop.Name)) throw Bad(path, $"tensor '{prop.Name}' appears twice in the header");
                entries[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
            }
            CheckTiling(path, entries.Values, dataLength);
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
                throw Bad(path, $"tensor '{name}': shape entry {d.GetRawText()} is not a non-negative integer");
            shape.Add((int)v);
            // Saturate instead of overflowing; a saturated count can never match a real byte span.
            count = v == 0 || count == 0 ? 0 : (count > long.MaxValue / v ? long.MaxValue : count * v);
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{name}': 'data_offsets' must be [begin, end]");
        long begin = ReadOffset(path, name, off[0]), end = ReadOffset(path, name, off[1]);
        if (end < begin) throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength) throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] run past the data section ({dataLength} bytes; file truncated?)");
        long expected = count > long.MaxValue / 8 ? long.MaxValue : count * dtype.Size();
        if (end - begin != expected)
            throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype.Name()} needs {expected} bytes but data_offsets span {end - begin}");
        return new SafetensorsEntry(name, dtype, shape.ToArray(), begin, end);
    }

    private static long ReadOffset(string path, string name, JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x) || x < 0)
            throw Bad(path, $"tensor '{name}': data offset {v.GetRawText()} is not a non-negative integer");
        return x;
    }

    /// <summary>
    /// Counts the top-level entries and measures their names with a forward-only reader, which allocates nothing, so
    /// headers with too many tensors or huge names are refused before a document or any entry is built.
    /// </summary>
    private static void CheckHeaderSize(string path, byte[] header)
    {
        var reader = new Utf8JsonReader(header, new JsonReaderOptions { MaxDepth = 64 });
        int tensors = 0;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1) continue;
            int nameBytes = reader.HasValueSequence ? (int)reader.ValueSequence.Length : reader.ValueSpan.Length;
            if (nameBytes > MaxNameBytes) throw Bad(path, $"a tensor name of {nameBytes} bytes is over the {MaxNameBytes}-byte limit");
            if (!reader.ValueTextEquals("__metadata__") && ++tensors > MaxTensors)
                throw Bad(path, $"the header lists more than the {MaxTensors} tensors a file may hold here");
        }
    }

    /// <summary>
    /// The tensors must tile the data section exactly, in offset order from 0 with no gap, overlap or trailing bytes,
    /// as the format (and Hugging Face's reader) requires: anything else is a damaged or hand-edited file.
    /// </summary>
    private static void CheckTiling(string path, IEnumerable<SafetensorsEntry> entries, long dataLength)
    {
        SafetensorsEntry? prev = null;
        long expected = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < expected)
                throw Bad(path, $"tensors '{prev!.Name}' [{prev.Begin}, {prev.End}) and '{e.Name}' [{e.Begin}, {e.End}) overlap");
            if (e.Begin > expected)
                throw Bad(path, $"{e.Begin - expected} unused bytes before tensor '{e.Name}' (data_offsets [{e.Begin}, {e.End}], the previous tensor ends at {expected})");
            expected = e.End;
            prev = e;
        }
        if (expected != dataLength)
            throw Bad(path, $"{dataLength - expected} bytes after the last tensor (tensors end at {expected} of a {dataLength}-byte data section)");
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public SafetensorsEntry Entry(string name) =>
        _entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor named '{name}' (has: {string.Join(", ", Names.Take(20))}{(Names.Count > 20 ? ", ..." : "")})");

    public Tensor ReadFloat32(string name)
    {
        var e = Entry(name);
        int n = CheckedCount(e);
        var t = Tensor.Uninitialized(e.Shape);
        var dst = t.Span;
        int size = e.DType.Size();
        for (int i = 0; i < n; i += ChunkElements)
        {
            int m = Math.Min(ChunkElements, n - i);
            DTypes.ToFloat32(e.DType, Bytes(e, (long)i * size, m * size), dst.Slice(i, m));
        }
        return t;
    }

    public Tensor ReadFloat32(string name, params int[] expectedShape)
    {
        var e = Entry(name);
        if (!e.Shape.AsSpan().SequenceEqual(expectedShape))
            throw new InvalidDataException($"{Path}: tensor '{name}' has shape {e.ShapeString}, expected [{string.Join(", ", expectedShape)}]");
        return ReadFloat32(name);
    }

    public double[] ReadFloat64(string name)
    {
        var e = Entry(name);
        int n = CheckedCount(e);
        var result = GC.AllocateUninitializedArray<double>(n);
        if (e.DType == DType.F64)
        {
            for (int i = 0; i < n; i += ChunkElements)
            {
                int m = Math.Min(ChunkElements, n - i);
                MemoryMarshal.Cast<byte, double>(Bytes(e, (long)i * 8, m * 8)).CopyTo(result.AsSpan(i, m));
            }
            return result;
        }
        if (e.DType is DType.I64 or DType.I32 or DType.U8 or DType.I8 or DType.Bool)
        {
            var ints = ReadInt64(name);
            for (int i = 0; i < n; i++) result[i] = ints[i];
            return result;
        }
        var buf = ArrayPool<float>.Shared.Rent(Math.Min(n, ChunkElements));
        try
        {
            int size = e.DType.Size();
            for (int i = 0; i < n; i += ChunkElements)
            {
                int m = Math.Min(ChunkElements, n - i);
                var f = buf.AsSpan(0, m);
                DTypes.ToFloat32(e.DType, Bytes(e, (long)i * size, m * size), f);
                for (int j = 0; j < m; j++) result[i + j] = f[j];
            }
        }
        finally { ArrayPool<float>.Shared.Return(buf); }
        return result;
    }

    public long[] ReadInt64(string name)
    {
        var e = Entry(name);
        int n = CheckedCount(e);
        var result = GC.AllocateUninitializedArray<long>(n);
        int size = e.DType.Size();
        for (int i = 0; i < n; i += ChunkElements)
        {
            int m = Math.Min(ChunkElements, n - i);
            var bytes = Bytes(e, (long)i * size, m * size);
            var dst = result.AsSpan(i, m);
            switch (e.DType)
            {
                case DType.I64: MemoryMarshal.Cast<byte, long>(bytes).CopyTo(dst); break;
                case DType.I32: { var s = MemoryMarshal.Cast<byte, int>(bytes); for (int j = 0; j < m; j++) dst[j] = s[j]; break; }
                case DType.U8: case DType.Bool: for (int j = 0; j < m; j++) dst[j] = bytes[j]; break;
                case DType.I8: for (int j = 0; j < m; j++) dst[j] = (sbyte)bytes[j]; break;
                default: throw new InvalidDataException($"{Path}: tensor '{name}' is {e.DType.Name()}, not an integer type");
            }
        }
        return result;
    }

    public int[] ReadInt32(string name)
    {
        var e = Entry(name);
        if (e.DType == DType.I32)
        {
            int n = CheckedCount(e);
            var result = GC.AllocateUninitializedArray<int>(n);
            for (int i = 0; i < n; i += ChunkElements)
            {
                int m = Math.Min(ChunkElements, n - i);
                MemoryMarshal.Cast<byte, int>(Bytes(e, (long)i * 4, m * 4)).CopyTo(result.AsSpan(i, m));
            }
            return result;
        }
        var wide = ReadInt64(name);
        var narrow = new int[wide.Length];
        for (int i = 0; i < wide.Length; i++)
        {
            if (wide[i] < int.MinValue || wide[i] > int.MaxValue)
                throw new InvalidDataException($"{Path}: tensor '{name}' element {i} = {wide[i]} does not fit in int32");
            narrow[i] = (int)wide[i];
        }
        return narrow;
    }

    public byte[] RawBytes(string name)
    {
        var e = Entry(name);
        long n = e.End - e.Begin;
        if (n > Array.MaxLength) throw new InvalidDataException($"{Path}: tensor '{e.Name}' is too large to read into one array ({n} bytes)");
        var bytes = GC.AllocateUninitializedArray<byte>((int)n);
        for (long i = 0; i < n; i += 1 << 30)
        {
            int m = (int)Math.Min(1 << 30, n - i);
            Bytes(e, i, m).CopyTo(bytes.AsSpan((int)i, m));
        }
        return bytes;
    }

    private int CheckedCount(SafetensorsEntry e)
    {
        long n = e.ElementCount;
        if (n > Array.MaxLength) throw new InvalidDataException($"{Path}: tensor '{e.Name}' has {n} elements, more than one array can hold");
        return (int)n;
    }

    /// <summary>A span over <paramref name="length"/> bytes of tensor <paramref name="e"/>, starting <paramref name="offset"/> bytes in.</summary>
    private ReadOnlySpan<byte> Bytes(SafetensorsEntry e, long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (length == 0) return default;
        return new ReadOnlySpan<byte>(_data + e.Begin + offset, length);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}

/// <summary>
/// Collects tensors and writes them as one safetensors file, atomically (via <see cref="AtomicFile"/>). Float
/// tensors added with <see cref="Add"/> are converted while writing, not copied at Add: keep them unchanged until
/// <see cref="Write"/> returns.
/// </summary>
public sealed class SafetensorsWriter
{
    private sealed record Item(string Name, DType DType, int[] Shape, long ByteLength, Action<Stream> WriteData);

    private readonly List<Item> _items = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    public SafetensorsWriter AddMetadata(string key, string value) { _metadata[key] = value; return this; }

    /// <summary>Adds a float tensor, stored as F32 (default), F16, BF16 or F64 (F16/BF16 round to nearest even).</summary>
    public SafetensorsWriter Add(string name, Tensor t, DType dtype = DType.F32)
    {
        if (!dtype.IsFloat()) throw new ArgumentException($"cannot store float tensor '{name}' as {dtype.Name()} (expected F32, F16, BF16 or F64)");
        return AddItem(name, dtype, t.Shape.ToArray(), (long)t.Length * dtype.Size(), s => DTypes.WriteConverted(s, t, dtype));
    }

    /// <summary>Adds float64 values stored as F64 (copied now).</summary>
    public SafetensorsWriter AddFloat64(string name, ReadOnlySpan<double> values, params int[] shape) =>
        AddRaw(name, DType.F64, shape, MemoryMarshal.AsBytes(values).ToArray());

    public SafetensorsWriter AddInt64(string name, ReadOnlySpan<long> values, params int[] shape) =>
        AddRaw(name, DType.I64, shape, MemoryMarshal.AsBytes(values).ToArray());

    public SafetensorsWriter AddInt32(string name, ReadOnlySpan<int> values, params int[] shape) =>
        AddRaw(name, DType.I32, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>Adds a 1-D I32 tensor without copying it (keep the array unchanged until Write).</summary>
    public SafetensorsWriter AddInt32Array(string name, int[] values) =>
        AddItem(name, DType.I32, [values.Length], 4L * values.Length, s =>
        {
            // Sliced: a byte view of more than 2^29 ints would overflow a span's length.
            for (int i = 0; i < values.Length; i += 1 << 28) s.Write(MemoryMarshal.AsBytes(values.AsSpan(i, Math.Min(1 << 28, values.Length - i))));
        });

    /// <summary>Adds already-encoded little-endian bytes (not copied: keep the array unchanged until Write).</summary>
    public SafetensorsWriter AddRaw(string name, DType dtype, int[] shape, byte[] bytes) =>
        AddItem(name, dtype, shape, bytes.LongLength, s => s.Write(bytes));

    private SafetensorsWriter AddItem(string name, DType dtype, int[] shape, long byteLength, Action<Stream> write)
    {
        if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved");
        if (name.Length == 0) throw new ArgumentException("tensor name is empty");
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' added twice");
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"tensor '{name}': negative dimension in shape [{string.Join(", ", shape)}]");
            count *= d;
        }
        if (count * dtype.Size() != byteLength)
        {
            _names.Remove(name);
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype.Name()} needs {count * dtype.Size()} bytes, got {byteLength}");
        }
        _items.Add(new Item(name, dtype, (int[])shape.Clone(), byteLength, write));
        return this;
    }

    /// <summary>Round-to-nearest-even float → bfloat16 (NaN stays NaN).</summary>
    public static ushort FloatToBFloat16(float f) => DTypes.FloatToBFloat16(f);

    /// <summary>The header bytes (JSON padded with spaces to a multiple of 8) for the tensors added so far.</summary>
    private byte[] HeaderBytes()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (_metadata.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in _metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var it in _items)
            {
                w.WriteStartObject(it.Name);
                w.WriteString("dtype", it.DType.Name());
                w.WriteStartArray("shape");
                foreach (int d in it.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + it.ByteLength);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += it.ByteLength;
            }
            w.WriteEndObject();
        }
        int len = (int)ms.Length, padded = (len + 7) / 8 * 8;
        var header = new byte[padded];
        ms.GetBuffer().AsSpan(0, len).CopyTo(header);
        header.AsSpan(len).Fill((byte)' ');
        return header;
    }

    public void Write(string path)
    {
        var header = HeaderBytes();
        AtomicFile.Write(path, s =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
            s.Write(len);
            s.Write(header);
            foreach (var it in _items)
            {
                long before = s.Position;
                it.WriteData(s);
                if (s.Position - before != it.ByteLength)
                    throw new InvalidOperationException($"tensor '{it.Name}' changed size between Add and Write");
            }
        });
    }
}
