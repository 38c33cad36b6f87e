using System.Buffers.Binary;
using System.Text;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.IO;

public class NpyTests
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Builds a .npy file by hand: magic, version, length field, header text, data.</summary>
    private static byte[] Build(string dict, byte[] data, int major = 1, int align = 64)
    {
        int preamble = major == 1 ? 10 : 12;
        var text = new StringBuilder(dict);
        while ((preamble + text.Length + 1) % align != 0) text.Append(' ');
        text.Append('\n');
        var h = major == 3 ? Encoding.UTF8.GetBytes(text.ToString()) : Encoding.Latin1.GetBytes(text.ToString());
        var bytes = new byte[preamble + h.Length + data.Length];
        Magic.CopyTo(bytes, 0);
        bytes[6] = (byte)major;
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)h.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)h.Length);
        h.CopyTo(bytes, preamble);
        data.CopyTo(bytes, preamble + h.Length);
        return bytes;
    }

    private static byte[] Bytes<T>(params T[] v) where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()).ToArray();

    [Fact]
    public void HeaderMatchesWhatNumpyWrites()
    {
        using var dir = new TempDir();
        string path = dir.File("a.npy");
        Npy.Write(path, Tensor.FromArray([0f, 1f, 2f, 3f, 4f, 5f], 2, 3));
        var bytes = File.ReadAllBytes(path);
        // np.save(np.arange(6, dtype='<f4').reshape(2, 3)): 10-byte preamble, header length 118 (0x76), 128 in all.
        Assert.Equal([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00], bytes[..10]);
        string header = Encoding.ASCII.GetString(bytes, 10, 118);
        Assert.Equal("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + new string(' ', 58) + "\n", header);
        Assert.Equal(128 + 24, bytes.Length);
        Assert.Equal(5f, BitConverter.ToSingle(bytes, 128 + 20));

        Npy.Write(dir.File("v.npy"), new long[] { 1, 2, 3 }, 3);
        Assert.Contains("'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", Encoding.ASCII.GetString(File.ReadAllBytes(dir.File("v.npy"))));
        Npy.Write(dir.File("s.npy"), new double[] { 2.5 });
        Assert.Contains("'shape': (), }", Encoding.ASCII.GetString(File.ReadAllBytes(dir.File("s.npy"))));
    }

    [Fact]
    public void RoundTripsEveryDtype()
    {
        using var dir = new TempDir();
        uint[] bits = [0x00000000, 0x80000000, 0x00000001, 0x7F7FFFFF, 0xFF800000, 0x7FC00001, 0x3DCCCCCD, 0x40490FDB];
        var t = Tensor.FromArray(bits.Select(BitConverter.UInt32BitsToSingle).ToArray(), 2, 2, 2);
        Npy.Write(dir.File("f4.npy"), t);
        var f4 = Npy.ReadFloat32(dir.File("f4.npy"));
        Assert.Equal([2, 2, 2], f4.Shape.ToArray());
        Assert.Equal(bits, f4.ToArray().Select(BitConverter.SingleToUInt32Bits));

        // f2: 0.1 rounds to 0x2E66 = 0.0999755859375; 65520 is a tie that rounds to +Inf.
        Npy.Write(dir.File("f2.npy"), Tensor.FromArray([0.1f, 65520f, -2f], 3), DType.F16);
        Assert.Equal(DType.F16, Npy.ReadHeader(dir.File("f2.npy")).DType);
        Assert.Equal([0.0999755859375f, float.PositiveInfinity, -2f], Npy.ReadFloat32(dir.File("f2.npy")).ToArray());

        Npy.Write(dir.File("f8t.npy"), Tensor.FromArray([0.1f], 1), DType.F64);
        Assert.Equal([(double)0.1f], Npy.ReadFloat64(dir.File("f8t.npy")).Data);

        double[] d = [Math.PI, -0.0, double.Epsilon, 1e300];
        Npy.Write(dir.File("f8.npy"), d, 2, 2);
        var f8 = Npy.ReadFloat64(dir.File("f8.npy"));
        Assert.Equal([2, 2], f8.Shape);
        Assert.Equal(d.Select(BitConverter.DoubleToInt64Bits), f8.Data.Select(BitConverter.DoubleToInt64Bits));
        Assert.Equal([(float)Math.PI, -0f, 0f, float.PositiveInfinity], Npy.ReadFloat32(dir.File("f8.npy")).ToArray());

        int[] i4 = [int.MinValue, -1, 0, int.MaxValue];
        Npy.Write(dir.File("i4.npy"), i4, 4);
        Assert.Equal(i4, Npy.ReadInt32(dir.File("i4.npy")).Data);
        Assert.Equal(i4.Select(x => (long)x), Npy.ReadInt64(dir.File("i4.npy")).Data);

        long[] i8 = [long.MinValue, -1, 0, long.MaxValue, 1L << 40, 7];
        Npy.Write(dir.File("i8.npy"), i8, 3, 2);
        var r8 = Npy.ReadInt64(dir.File("i8.npy"));
        Assert.Equal(i8, r8.Data);
        Assert.Equal([3, 2], r8.Shape);
        var ex = Assert.Throws<InvalidDataException>(() => Npy.ReadInt32(dir.File("i8.npy")));
        Assert.Contains("element 0 = -9223372036854775808 does not fit in int32", ex.Message);

        Npy.Write(dir.File("u1.npy"), new byte[] { 0, 128, 255 }, 3);
        Assert.Equal("|u1", Npy.ReadHeader(dir.File("u1.npy")).Descr);
        Assert.Equal([0L, 128, 255], Npy.ReadInt64(dir.File("u1.npy")).Data);
        Assert.Equal([0f, 128f, 255f], Npy.ReadFloat32(dir.File("u1.npy")).ToArray());

        var fl = Assert.Throws<InvalidDataException>(() => Npy.ReadInt64(dir.File("f4.npy")));
        Assert.Contains("float dtype '<f4'", fl.Message);
    }

    [Fact]
    public void ReadsHandBuiltVersionsAndLegacyHeaders()
    {
        using var dir = new TempDir();
        // Version 2.0 (4-byte length), double quotes, no trailing comma.
        File.WriteAllBytes(dir.File("v2.npy"), Build("{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (2,)}", Bytes(5, -6), major: 2));
        Assert.Equal([5, -6], Npy.ReadInt32(dir.File("v2.npy")).Data);
        Assert.Equal(2, Npy.ReadHeader(dir.File("v2.npy")).Version);
        // Version 3.0 (UTF-8 header), key order shuffled.
        File.WriteAllBytes(dir.File("v3.npy"), Build("{'shape': (1, 1), 'fortran_order': False, 'descr': '<f8', }", Bytes(1.5), major: 3));
        Assert.Equal([1.5f], Npy.ReadFloat32(dir.File("v3.npy")).ToArray());
        // Python 2 numpy: 16-byte alignment and long dimensions written as 3L.
        File.WriteAllBytes(dir.File("py2.npy"), Build("{'descr': '<i8', 'fortran_order': False, 'shape': (3L,), }", Bytes(1L, 2L, 3L), align: 16));
        Assert.Equal([1L, 2L, 3L], Npy.ReadInt64(dir.File("py2.npy")).Data);
        // Empty arrays and a zero dimension.
        File.WriteAllBytes(dir.File("z.npy"), Build("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", []));
        Assert.Equal([0, 5], Npy.ReadFloat32(dir.File("z.npy")).Shape.ToArray());
        // f2 from raw bits: 0x3C00 = 1, 0xFC00 = -Inf, 0x7E00 = NaN.
        File.WriteAllBytes(dir.File("h.npy"), Build("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", Bytes<ushort>(0x3C00, 0xFC00, 0x7E00)));
        var h = Npy.ReadFloat32(dir.File("h.npy")).ToArray();
        Assert.Equal(1f, h[0]);
        Assert.Equal(float.NegativeInfinity, h[1]);
        Assert.True(float.IsNaN(h[2]));
        // |b1 and |i1.
        File.WriteAllBytes(dir.File("b.npy"), Build("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", [1, 0]));
        Assert.Equal([1L, 0L], Npy.ReadInt64(dir.File("b.npy")).Data);
        File.WriteAllBytes(dir.File("i1.npy"), Build("{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", [0xFF, 0x05]));
        Assert.Equal([-1, 5], Npy.ReadInt32(dir.File("i1.npy")).Data);
    }

    public static TheoryData<string, byte[], string> BadFiles => new()
    {
        { "bad magic", [0x93, .. "NUMPX"u8, 1, 0, 0, 0, .. new byte[64]], "magic" },
        { "too short", [0x93, (byte)'N'], "shorter than the 10-byte preamble" },
        { "unknown version", [.. Magic, 4, 0, 0, 0, .. new byte[64]], "format version 4.0 is not supported" },
        { "header length past end", [.. Magic, 1, 0, 0xFF, 0xFF, .. "{}\n"u8], "header length 65535 runs past the end" },
        { "huge v2 header length", [.. Magic, 2, 0, 0xFF, 0xFF, 0xFF, 0xFF, .. "{}\n"u8], "header length 4294967295 runs past the end" },
        { "truncated data", Build("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", new byte[20]), "truncated: shape [2, 3] of <f4 needs 24 data bytes but the file has 20" },
        { "trailing bytes", Build("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", new byte[8]), "4 unexpected bytes" },
        { "fortran order", Build("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", new byte[16]), "Fortran (column-major) order" },
        { "big-endian", Build("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", new byte[4]), "dtype '>f4' is big-endian" },
        { "unsupported dtype", Build("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new byte[8]), "unsupported dtype '<c8'" },
        { "unicode dtype", Build("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", new byte[12]), "unsupported dtype '<U3'" },
        { "structured dtype", Build("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", new byte[4]), "'descr' is not a string" },
        { "negative shape", Build("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", new byte[4]), "shape entry 0 (-1) is not a non-negative integer" },
        { "fractional shape", Build("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,), }", new byte[4]), "shape entry 0 ('1.5') is not a non-negative integer" },
        { "huge shape", Build("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4),}", new byte[8]), "is not a non-negative integer" },
        { "overflowing shape", Build("{'descr': '<f8', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647),}", new byte[8]), "truncated" },
        { "shape not a tuple", Build("{'descr': '<f4', 'fortran_order': False, 'shape': 3, }", new byte[12]), "'shape' is not a tuple" },
        { "missing key", Build("{'descr': '<f4', 'shape': (1,), }", new byte[4]), "expected exactly descr, fortran_order, shape" },
        { "extra key", Build("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", new byte[4]), "expected exactly descr, fortran_order, shape" },
        { "bad dict", Build("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", new byte[4]), "header dict could not be parsed" },
        { "not a dict", Build("[1, 2]", []), "does not start with '{'" },
        { "fortran_order not bool", Build("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", new byte[4]), "'fortran_order' is not True or False" },
    };

    [Theory, MemberData(nameof(BadFiles))]
    public void BadFileIsNamed(string label, byte[] bytes, string problem)
    {
        using var dir = new TempDir();
        string path = dir.File(label.Replace(' ', '_') + ".npy");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<InvalidDataException>(() => Npy.ReadFloat32(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains(problem, ex.Message);
        Assert.Throws<InvalidDataException>(() => Npy.ReadHeader(path));
    }

    [Fact]
    public void RandomCorruptionNeverCrashes()
    {
        using var dir = new TempDir();
        string good = dir.File("good.npy");
        Npy.Write(good, Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 3, 2), DType.F16);
        var original = File.ReadAllBytes(good);
        var rng = new Rng(77);
        string path = dir.File("fuzz.npy");
        int rejected = 0;
        for (int iter = 0; iter < 300; iter++)
        {
            var bytes = (byte[])original.Clone();
            if (iter % 3 == 2) bytes = bytes[..rng.NextInt(bytes.Length)];
            else for (int k = 0; k < 1 + rng.NextInt(3); k++) bytes[rng.NextInt(iter % 3 == 0 ? 80 : bytes.Length)] = (byte)rng.NextInt(256);
            File.WriteAllBytes(path, bytes);
            try { Npy.ReadFloat32(path); }
            catch (InvalidDataException ex) { Assert.Contains(path, ex.Message); rejected++; }
        }
        Assert.True(rejected > 100, $"only {rejected} corruptions rejected");
    }

    [Fact]
    public void ArraysLargerThanOneReadChunkRoundTrip()
    {
        // The reader streams 4 MB at a time; 1,100,003 values cross chunk boundaries for every dtype.
        const int n = 1_100_003;
        var t = Tensor.Uninitialized(n);
        var longs = new long[n];
        for (int i = 0; i < n; i++) { t.Span[i] = (i % 2048) - 1024; longs[i] = i * 3L - n; }
        using var dir = new TempDir();
        Npy.Write(dir.File("f4.npy"), t);
        Npy.Write(dir.File("f2.npy"), t, DType.F16);
        Npy.Write(dir.File("i8.npy"), longs, n);
        Assert.True(t.Span.SequenceEqual(Npy.ReadFloat32(dir.File("f4.npy")).Span));
        Assert.True(t.Span.SequenceEqual(Npy.ReadFloat32(dir.File("f2.npy")).Span));
        var d = Npy.ReadFloat64(dir.File("f2.npy")).Data;
        Assert.Equal(t.Span[n - 1], d[n - 1]);
        Assert.Equal(t.Span[1_048_576], d[1_048_576]);
        Assert.Equal(longs, Npy.ReadInt64(dir.File("i8.npy")).Data);
        Assert.Equal(longs.Select(x => (int)x), Npy.ReadInt32(dir.File("i8.npy")).Data);
    }

    [Fact]
    public void WriteRejectsShapeMismatch()
    {
        using var dir = new TempDir();
        Assert.Throws<ArgumentException>(() => Npy.Write(dir.File("x.npy"), new long[] { 1, 2 }, 3));
        Assert.Throws<ArgumentException>(() => Npy.Write(dir.File("x.npy"), new Tensor(2), DType.I32));
        Assert.False(File.Exists(dir.File("x.npy")));
    }

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        using var dir = new TempDir();
        Assert.Throws<FileNotFoundException>(() => Npy.ReadFloat32(dir.File("none.npy")));
    }
}
