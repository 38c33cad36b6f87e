using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using SaeSharp.Tensors;

namespace SaeSharp.IO;

/// <summary>The parsed header of a .npy file.</summary>
/// <param name="Descr">The numpy dtype string, e.g. <c>&lt;f4</c>.</param>
/// <param name="DataOffset">Byte offset of the array data (the preamble and header length).</param>
/// <param name="Version">Format version: 1, 2 or 3 (the major number).</param>
public sealed record NpyHeader(DType DType, string Descr, int[] Shape, long DataOffset, int Version)
{
    public long ElementCount
    {
        get { long n = 1; foreach (int d in Shape) n *= d; return n; }
    }

    public string ShapeString => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>An array read from a .npy file: values in C (row-major) order plus the shape.</summary>
public sealed record NpyArray<T>(T[] Data, int[] Shape);

/// <summary>
/// NumPy .npy files (format versions 1.0, 2.0 and 3.0), little-endian, C order. Readable dtypes: &lt;f2 &lt;f4
/// &lt;f8 &lt;i4 &lt;i8 |u1 |i1 |b1. The header is checked (magic, length, dict, dtype, shape against the file size)
/// before anything the size of the data is allocated. Writes go through <see cref="AtomicFile"/>.
/// </summary>
/// <exception cref="InvalidDataException">Malformed or unsupported file; the message names the file and the problem.</exception>
public static class Npy
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Headers longer than this are refused before they are read (numpy's own loader refuses 10,000 by default).</summary>
    public const int MaxHeaderBytes = 1 << 20;

    private const int ChunkBytes = 1 << 22;

    private static InvalidDataException Bad(string path, string problem) => new($"{path}: not a readable .npy file: {problem}");

    public static NpyHeader ReadHeader(string path)
    {
        using var fs = OpenRead(path);
        return ReadHeader(path, fs);
    }

    /// <summary>Reads any supported dtype into a float32 tensor of the file's shape (converting; int64 beyond 2^24 rounds).</summary>
    public static Tensor ReadFloat32(string path)
    {
        using var fs = OpenRead(path);
        var h = ReadHeader(path, fs);
        var t = Tensor.Uninitialized(h.Shape);
        var dst = t.Span;
        if (h.DType == DType.F32) ReadExact(path, fs, dst);
        else ReadConverted(path, fs, h, (bytes, start, count) => DTypes.ToFloat32(h.DType, bytes, t.Span.Slice(start, count)));
        return t;
    }

    /// <summary>Reads a float or integer array as float64 (exact for &lt;f8 and every narrower type).</summary>
    public static NpyArray<double> ReadFloat64(string path)
    {
        using var fs = OpenRead(path);
        var h = ReadHeader(path, fs);
        var data = GC.AllocateUninitializedArray<double>((int)h.ElementCount);
        if (h.DType == DType.F64) ReadExact(path, fs, data.AsSpan());
        else if (h.DType.IsFloat())
        {
            var buf = new float[Math.Min(data.Length, ChunkBytes / h.DType.Size())];
            ReadConverted(path, fs, h, (bytes, start, count) =>
            {
                var f = buf.AsSpan(0, count);
                DTypes.ToFloat32(h.DType, bytes, f);
                for (int i = 0; i < count; i++) data[start + i] = f[i];
            });
        }
        else
        {
            var wide = new long[Math.Min(data.Length, ChunkBytes / h.DType.Size())];
            ReadConverted(path, fs, h, (bytes, start, count) =>
            {
                var w = wide.AsSpan(0, count);
                IntsToInt64(h.DType, bytes, w);
                for (int i = 0; i < count; i++) data[start + i] = w[i];
            });
        }
        return new NpyArray<double>(data, h.Shape);
    }

    /// <summary>Reads an integer array (&lt;i8 &lt;i4 |u1 |i1 |b1) as int64; float dtypes are an error.</summary>
    public static NpyArray<long> ReadInt64(string path)
    {
        using var fs = OpenRead(path);
        var h = ReadHeader(path, fs);
        RequireInteger(path, h);
        var data = GC.AllocateUninitializedArray<long>((int)h.ElementCount);
        if (h.DType == DType.I64) ReadExact(path, fs, data.AsSpan());
        else ReadConverted(path, fs, h, (bytes, start, count) => IntsToInt64(h.DType, bytes, data.AsSpan(start, count)));
        return new NpyArray<long>(data, h.Shape);
    }

    /// <summary>Reads an integer array as int32; &lt;i8 values outside the int32 range are an error.</summary>
    public static NpyArray<int> ReadInt32(string path)
    {
        using var fs = OpenRead(path);
        var h = ReadHeader(path, fs);
        RequireInteger(path, h);
        var data = GC.AllocateUninitializedArray<int>((int)h.ElementCount);
        if (h.DType == DType.I32) ReadExact(path, fs, data.AsSpan());
        else
        {
            var wide = new long[Math.Min(data.Length, ChunkBytes / h.DType.Size())];
            ReadConverted(path, fs, h, (bytes, start, count) =>
            {
                var w = wide.AsSpan(0, count);
                IntsToInt64(h.DType, bytes, w);
                for (int i = 0; i < count; i++)
                {
                    if (w[i] < int.MinValue || w[i] > int.MaxValue)
                        throw new InvalidDataException($"{path}: element {start + i} = {w[i]} does not fit in int32");
                    data[start + i] = (int)w[i];
                }
            });
        }
        return new NpyArray<int>(data, h.Shape);
    }

    /// <summary>Writes a float tensor as &lt;f4 (default), &lt;f2 or &lt;f8 (F16 rounds to nearest even).</summary>
    public static void Write(string path, Tensor t, DType dtype = DType.F32)
    {
        if (dtype is not (DType.F32 or DType.F16 or DType.F64))
            throw new ArgumentException($"cannot write a float tensor to .npy as {dtype.Name()} (expected F32, F16 or F64)");
        var header = BuildHeader(dtype, t.Shape.ToArray());
        AtomicFile.Write(path, s =>
        {
            s.Write(header);
            DTypes.WriteConverted(s, t, dtype);
        });
    }

    public static void Write(string path, ReadOnlySpan<double> values, params int[] shape) => WriteRaw(path, DType.F64, shape, MemoryMarshal.AsBytes(values));
    public static void Write(string path, ReadOnlySpan<long> values, params int[] shape) => WriteRaw(path, DType.I64, shape, MemoryMarshal.AsBytes(values));
    public static void Write(string path, ReadOnlySpan<int> values, params int[] shape) => WriteRaw(path, DType.I32, shape, MemoryMarshal.AsBytes(values));
    /// <summary>Writes bytes as |u1.</summary>
    public static void Write(string path, ReadOnlySpan<byte> values, params int[] shape) => WriteRaw(path, DType.U8, shape, values);

    private static void WriteRaw(string path, DType dtype, int[] shape, ReadOnlySpan<byte> bytes)
    {
        long count = CheckShape(shape);
        if (count * dtype.Size() != bytes.Length)
            throw new ArgumentException($"{path}: shape [{string.Join(", ", shape)}] of {Descr(dtype)} needs {count * dtype.Size()} bytes, got {bytes.Length}");
        var header = BuildHeader(dtype, shape);
        var copy = bytes.ToArray(); // the span cannot be captured by the write callback
        AtomicFile.Write(path, s => { s.Write(header); s.Write(copy); });
    }

    private static long CheckShape(int[] shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            count *= d;
        }
        return count;
    }

    private static string Descr(DType t) => t switch
    {
        DType.F16 => "<f2", DType.F32 => "<f4", DType.F64 => "<f8", DType.I32 => "<i4", DType.I64 => "<i8",
        DType.U8 => "|u1", DType.I8 => "|i1", DType.Bool => "|b1",
        _ => throw new ArgumentException($"no .npy dtype for {t.Name()}"),
    };

    /// <summary>Magic, version, header length and the padded dict, as numpy writes them (total a multiple of 64).</summary>
    private static byte[] BuildHeader(DType dtype, int[] shape)
    {
        CheckShape(shape);
        string shapeText = shape.Length switch
        {
            0 => "()",
            1 => $"({shape[0]},)",
            _ => "(" + string.Join(", ", shape) + ")",
        };
        string dict = $"{{'descr': '{Descr(dtype)}', 'fortran_order': False, 'shape': {shapeText}, }}";
        int version = dict.Length + 1 + 10 <= ushort.MaxValue ? 1 : 2;
        int preamble = version == 1 ? 10 : 12;
        int total = (preamble + dict.Length + 1 + 63) / 64 * 64;
        var bytes = new byte[total];
        Magic.CopyTo(bytes);
        bytes[6] = (byte)version;
        bytes[7] = 0;
        int headerLen = total - preamble;
        if (version == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLen);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)headerLen);
        Encoding.ASCII.GetBytes(dict, bytes.AsSpan(preamble));
        bytes.AsSpan(preamble + dict.Length, headerLen - dict.Length - 1).Fill((byte)' ');
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    private static FileStream OpenRead(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($".npy file not found: {path}", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    private static NpyHeader ReadHeader(string path, FileStream fs)
    {
        long fileLength = fs.Length;
        if (fileLength < 10) throw Bad(path, $"file is {fileLength} bytes, shorter than the 10-byte preamble");
        Span<byte> pre = stackalloc byte[12];
        fs.ReadExactly(pre[..8]);
        if (!pre[..6].SequenceEqual(Magic)) throw Bad(path, "missing the \\x93NUMPY magic at the start");
        int major = pre[6], minor = pre[7];
        if (major is not (1 or 2 or 3) || minor != 0) throw Bad(path, $"format version {major}.{minor} is not supported (expected 1.0, 2.0 or 3.0)");
        long headerLen;
        int preamble;
        if (major == 1)
        {
            fs.ReadExactly(pre.Slice(8, 2));
            headerLen = BinaryPrimitives.ReadUInt16LittleEndian(pre[8..]);
            preamble = 10;
        }
        else
        {
            if (fileLength < 12) throw Bad(path, $"file is {fileLength} bytes, shorter than the 12-byte version {major} preamble");
            fs.ReadExactly(pre.Slice(8, 4));
            headerLen = BinaryPrimitives.ReadUInt32LittleEndian(pre[8..]);
            preamble = 12;
        }
        if (headerLen > fileLength - preamble) throw Bad(path, $"header length {headerLen} runs past the end of the file ({fileLength} bytes)");
        if (headerLen > MaxHeaderBytes) throw Bad(path, $"header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
        var headerBytes = new byte[headerLen];
        fs.ReadExactly(headerBytes);
        string text;
        try
        {
            text = major == 3 ? new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes) : Encoding.Latin1.GetString(headerBytes);
        }
        catch (DecoderFallbackException) { throw Bad(path, "version 3.0 header is not valid UTF-8"); }

        var dict = HeaderParser.Parse(path, text);
        var keys = dict.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (!keys.SequenceEqual(["descr", "fortran_order", "shape"]))
            throw Bad(path, $"header keys are [{string.Join(", ", keys)}], expected exactly descr, fortran_order, shape");

        if (dict["descr"] is not string descr) throw Bad(path, $"'descr' is not a string (structured dtypes are not supported)");
        if (dict["fortran_order"] is not bool fortran) throw Bad(path, "'fortran_order' is not True or False");
        if (fortran) throw Bad(path, "array is stored in Fortran (column-major) order; only C order is supported (save np.ascontiguousarray(a))");
        var dtype = ParseDescr(path, descr);
        if (dict["shape"] is not List<object?> dims) throw Bad(path, "'shape' is not a tuple");
        var shape = new int[dims.Count];
        long count = 1;
        for (int i = 0; i < dims.Count; i++)
        {
            if (dims[i] is not long d || d < 0 || d > int.MaxValue) throw Bad(path, $"shape entry {i} ({Show(dims[i])}) is not a non-negative integer");
            shape[i] = (int)d;
            count = d == 0 || count == 0 ? 0 : (count > long.MaxValue / d ? long.MaxValue : count * d);
        }
        long dataOffset = preamble + headerLen;
        long expected = count > long.MaxValue / 8 ? long.MaxValue : count * dtype.Size();
        long actual = fileLength - dataOffset;
        if (actual < expected) throw Bad(path, $"truncated: shape [{string.Join(", ", shape)}] of {descr} needs {expected} data bytes but the file has {actual}");
        if (actual > expected) throw Bad(path, $"{actual - expected} unexpected bytes after the data of shape [{string.Join(", ", shape)}] of {descr}");
        if (count > Array.MaxLength) throw Bad(path, $"{count} elements are more than one array can hold");
        return new NpyHeader(dtype, descr, shape, dataOffset, major);
    }

    private static string Show(object? v) => v switch { null => "None", string s => $"'{s}'", bool b => b ? "True" : "False", List<object?> => "a tuple", _ => Convert.ToString(v, CultureInfo.InvariantCulture)! };

    private static DType ParseDescr(string path, string descr)
    {
        switch (descr)
        {
            case "<f2": return DType.F16;
            case "<f4": return DType.F32;
            case "<f8": return DType.F64;
            case "<i4": return DType.I32;
            case "<i8": return DType.I64;
            case "|u1": case "<u1": return DType.U8;
            case "|i1": case "<i1": return DType.I8;
            case "|b1": return DType.Bool;
        }
        if (descr.StartsWith('>'))
            throw Bad(path, $"dtype '{descr}' is big-endian; only little-endian is supported (save a.astype('<{descr[1..]}'))");
        throw Bad(path, $"unsupported dtype '{descr}' (expected <f2, <f4, <f8, <i4, <i8, |u1, |i1 or |b1)");
    }

    private static void RequireInteger(string path, NpyHeader h)
    {
        if (h.DType.IsFloat()) throw new InvalidDataException($"{path}: array has float dtype '{h.Descr}', expected an integer dtype");
    }

    /// <summary>Fills <paramref name="dst"/> from the stream in chunks (a byte view of a big array can pass 2 GB).</summary>
    private static void ReadExact<T>(string path, Stream s, Span<T> dst) where T : unmanaged
    {
        int step = ChunkBytes / System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        try
        {
            for (int i = 0; i < dst.Length; i += step)
                s.ReadExactly(MemoryMarshal.AsBytes(dst.Slice(i, Math.Min(step, dst.Length - i))));
        }
        catch (EndOfStreamException) { throw Bad(path, "file ended before the array data did (changed while reading?)"); }
    }

    private delegate void ChunkSink(ReadOnlySpan<byte> bytes, int start, int count);

    /// <summary>Streams the data in element-aligned chunks to <paramref name="sink"/>.</summary>
    private static void ReadConverted(string path, Stream s, NpyHeader h, ChunkSink sink)
    {
        int size = h.DType.Size();
        int chunkElems = ChunkBytes / size;
        int n = (int)h.ElementCount;
        var buf = ArrayPool<byte>.Shared.Rent(Math.Min(n, chunkElems) * size);
        try
        {
            for (int i = 0; i < n; i += chunkElems)
            {
                int m = Math.Min(chunkElems, n - i);
                var b = buf.AsSpan(0, m * size);
                ReadExact(path, s, b);
                sink(b, i, m);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    private static void IntsToInt64(DType dtype, ReadOnlySpan<byte> bytes, Span<long> dst)
    {
        switch (dtype)
        {
            case DType.I64: MemoryMarshal.Cast<byte, long>(bytes).CopyTo(dst); break;
            case DType.I32: { var s = MemoryMarshal.Cast<byte, int>(bytes); for (int i = 0; i < dst.Length; i++) dst[i] = s[i]; break; }
            case DType.U8: case DType.Bool: for (int i = 0; i < dst.Length; i++) dst[i] = bytes[i]; break;
            case DType.I8: for (int i = 0; i < dst.Length; i++) dst[i] = (sbyte)bytes[i]; break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    /// <summary>Parses the Python literal subset numpy writes: a dict of str keys to str, True/False/None, ints and tuples/lists.</summary>
    private ref struct HeaderParser
    {
        private readonly string _path;
        private readonly string _s;
        private int _i;

        private HeaderParser(string path, string s) { _path = path; _s = s; _i = 0; }

        public static Dictionary<string, object?> Parse(string path, string text)
        {
            var p = new HeaderParser(path, text);
            p.SkipWs();
            if (p.Peek() != '{') throw p.Fail("header does not start with '{'");
            var d = (Dictionary<string, object?>)p.Value(0)!;
            p.SkipWs();
            if (p._i != p._s.Length) throw p.Fail("unexpected text after the header dict");
            return d;
        }

        private InvalidDataException Fail(string problem) => Bad(_path, $"header dict could not be parsed: {problem} at character {_i}");
        private char Peek() => _i < _s.Length ? _s[_i] : '\0';
        private void SkipWs() { while (_i < _s.Length && char.IsWhiteSpace(_s[_i])) _i++; }

        private object? Value(int depth)
        {
            if (depth > 16) throw Fail("nesting too deep");
            SkipWs();
            char c = Peek();
            switch (c)
            {
                case '{':
                    {
                        _i++;
                        var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                        while (true)
                        {
                            SkipWs();
                            if (Peek() == '}') { _i++; return d; }
                            if (Value(depth + 1) is not string key) throw Fail("dict key is not a string");
                            SkipWs();
                            if (Peek() != ':') throw Fail("expected ':'");
                            _i++;
                            var v = Value(depth + 1);
                            if (!d.TryAdd(key, v)) throw Fail($"key '{key}' repeated");
                            SkipWs();
                            if (Peek() == ',') { _i++; continue; }
                            if (Peek() == '}') { _i++; return d; }
                            throw Fail("expected ',' or '}'");
                        }
                    }
                case '(':
                case '[':
                    {
                        char close = c == '(' ? ')' : ']';
                        _i++;
                        var list = new List<object?>();
                        while (true)
                        {
                            SkipWs();
                            if (Peek() == close) { _i++; return list; }
                            list.Add(Value(depth + 1));
                            SkipWs();
                            if (Peek() == ',') { _i++; continue; }
                            if (Peek() == close) { _i++; return list; }
                            throw Fail($"expected ',' or '{close}'");
                        }
                    }
                case '\'':
                case '"':
                    {
                        int start = ++_i;
                        while (_i < _s.Length && _s[_i] != c)
                        {
                            if (_s[_i] == '\\') throw Fail("escapes in strings are not supported");
                            _i++;
                        }
                        if (_i >= _s.Length) throw Fail("unterminated string");
                        return _s[start.._i++];
                    }
                default:
                    {
                        int start = _i;
                        while (_i < _s.Length && (char.IsAsciiLetterOrDigit(_s[_i]) || _s[_i] is '-' or '+' or '_' or '.')) _i++;
                        string word = _s[start.._i];
                        if (word == "True") return true;
                        if (word == "False") return false;
                        if (word == "None") return null;
                        // Python 2 numpy wrote long dimensions as '3L'.
                        string digits = word.EndsWith('L') ? word[..^1] : word;
                        if (digits.Length > 0 && long.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n)) return n;
                        if (word.Length == 0) throw Fail(_i < _s.Length ? $"unexpected character '{_s[_i]}'" : "unexpected end");
                        return word; // floats and other words; callers reject them by type
                    }
            }
        }
    }
}
