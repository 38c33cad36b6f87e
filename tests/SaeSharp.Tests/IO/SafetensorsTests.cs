using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.IO;

public class SafetensorsTests
{
    private static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    [Fact]
    public void F32RoundTripIsBitExact()
    {
        using var dir = new TempDir();
        // -0, subnormals, NaN payloads, infinities and extremes must all survive unchanged.
        uint[] bits = [0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF800000, 0x7F800000, 0x7FC00001, 0xFFBADBAD, 0x3DCCCCCD];
        var t = Tensor.FromArray(bits.Select(F).ToArray(), 2, 5);
        string path = dir.File("a.safetensors");
        new SafetensorsWriter().Add("w", t).AddMetadata("format", "pt").Write(path);
        using var f = SafetensorsFile.Open(path);
        var back = f.ReadFloat32("w", 2, 5);
        Assert.Equal(bits, back.ToArray().Select(BitConverter.SingleToUInt32Bits).ToArray());
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(DType.F32, f.Entry("w").DType);
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void HeaderIsPaddedToEightBytesAndDataFollowsInOrder()
    {
        using var dir = new TempDir();
        string path = dir.File("b.safetensors");
        new SafetensorsWriter().Add("x", Tensor.FromArray([1f, 2f, 3f], 3)).AddInt64("ids", [7L, -8L], 2).Write(path);
        var bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        Assert.Equal("[0,12]", doc.RootElement.GetProperty("x").GetProperty("data_offsets").GetRawText());
        Assert.Equal("[12,28]", doc.RootElement.GetProperty("ids").GetProperty("data_offsets").GetRawText());
        Assert.Equal("I64", doc.RootElement.GetProperty("ids").GetProperty("dtype").GetString());
        Assert.Equal(8 + n + 28, bytes.Length);
        Assert.Equal(2f, BitConverter.ToSingle(bytes, (int)(8 + n + 4)));
        Assert.Equal(-8L, BitConverter.ToInt64(bytes, (int)(8 + n + 20)));
    }

    [Fact]
    public void IntegerAndF64RoundTrips()
    {
        using var dir = new TempDir();
        string path = dir.File("c.safetensors");
        long[] longs = [long.MinValue, -1, 0, 1, long.MaxValue, 1L << 40];
        int[] ints = [int.MinValue, -5, 0, 5, int.MaxValue, 3];
        double[] doubles = [Math.PI, -0.0, double.Epsilon, 1e300, double.NegativeInfinity, 0.1];
        new SafetensorsWriter()
            .AddInt64("l", longs, 2, 3).AddInt32("i", ints, 3, 2).AddFloat64("d", doubles, 6)
            .AddRaw("u", DType.U8, [3], [0, 200, 255]).AddRaw("s", DType.I8, [2], [0x80, 0x7F]).AddRaw("b", DType.Bool, [2], [1, 0])
            .Write(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(longs, f.ReadInt64("l"));
        Assert.Equal(ints, f.ReadInt32("i"));
        Assert.Equal(ints.Select(i => (long)i), f.ReadInt64("i"));
        Assert.Equal(doubles.Select(BitConverter.DoubleToInt64Bits), f.ReadFloat64("d").Select(BitConverter.DoubleToInt64Bits));
        Assert.Equal([0L, 200, 255], f.ReadInt64("u"));
        Assert.Equal([-128L, 127], f.ReadInt64("s"));
        Assert.Equal([1, 0], f.ReadInt32("b"));
        Assert.Equal([(float)int.MinValue, -5f, 0f, 5f, int.MaxValue, 3f], f.ReadFloat32("i").ToArray());
        Assert.Equal([6], f.Entry("d").Shape);
        // Names come in file (offset) order.
        Assert.Equal(["l", "i", "d", "u", "s", "b"], f.Names);

        var ex = Assert.Throws<InvalidDataException>(() => f.ReadInt32("l"));
        Assert.Contains("does not fit in int32", ex.Message);
        var ex2 = Assert.Throws<InvalidDataException>(() => f.ReadInt64("d"));
        Assert.Contains("not an integer type", ex2.Message);
        var ex3 = Assert.Throws<KeyNotFoundException>(() => f.ReadFloat32("nope"));
        Assert.Contains(path, ex3.Message);
        var ex4 = Assert.Throws<InvalidDataException>(() => f.ReadFloat32("d", 2, 3));
        Assert.Contains("[6]", ex4.Message);
    }

    [Fact]
    public void F64ToF32RoundsToNearestEven()
    {
        using var dir = new TempDir();
        string path = dir.File("d.safetensors");
        // 1 + 2^-24 lies halfway between 1 and 1 + 2^-23 (ties to the even 1); 1 + 3*2^-24 ties up to 1 + 2^-22.
        double[] v = [0.1, 1 + Math.Pow(2, -24), 1 + 3 * Math.Pow(2, -24), 1e300, double.NaN];
        new SafetensorsWriter().AddFloat64("d", v, 5).Write(path);
        using var f = SafetensorsFile.Open(path);
        var r = f.ReadFloat32("d").ToArray();
        Assert.Equal(0x3DCCCCCDu, BitConverter.SingleToUInt32Bits(r[0]));
        Assert.Equal(1f, r[1]);
        Assert.Equal(1f + MathF.Pow(2, -22), r[2]);
        Assert.Equal(float.PositiveInfinity, r[3]);
        Assert.True(float.IsNaN(r[4]));
    }

    // (float32 input, expected float16 bits): exact values, ties to even, overflow, subnormals, specials.
    public static TheoryData<uint, ushort> HalfCases => new()
    {
        { 0x3F800000, 0x3C00 },                 // 1
        { 0xC0000000, 0xC000 },                 // -2
        { 0x3DCCCCCD, 0x2E66 },                 // 0.1 -> 0.0999755859375
        { 0x477FE000, 0x7BFF },                 // 65504, the largest half
        { 0x477FF000, 0x7C00 },                 // 65520 ties between 65504 and 65536: even goes to Inf
        { 0x477FEFFF, 0x7BFF },                 // just below that tie stays finite
        { 0x3F801000, 0x3C00 },                 // 1 + 2^-11: tie, rounds down to even
        { 0x3F803000, 0x3C02 },                 // 1 + 3*2^-11: tie, rounds up to even
        { 0x3F801001, 0x3C01 },                 // just above a tie rounds up
        { 0x33800000, 0x0001 },                 // 2^-24, smallest subnormal
        { 0x33000000, 0x0000 },                 // 2^-25: tie between 0 and 2^-24 goes to 0
        { 0x33C00000, 0x0002 },                 // 3*2^-25: tie goes up to 2^-23
        { 0x80000000, 0x8000 },                 // -0
        { 0x7F800000, 0x7C00 },                 // +Inf
        { 0xFF800000, 0xFC00 },                 // -Inf
    };

    [Theory, MemberData(nameof(HalfCases))]
    public void F16WriteRoundsToNearestEvenAndReadsBack(uint input, ushort expected)
    {
        using var dir = new TempDir();
        string path = dir.File("h.safetensors");
        new SafetensorsWriter().Add("h", Tensor.FromArray([F(input)], 1), DType.F16).Write(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(DType.F16, f.Entry("h").DType);
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16LittleEndian(f.RawBytes("h")));
        Assert.Equal(BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(expected)), BitConverter.SingleToUInt32Bits(f.ReadFloat32("h")[0]));
    }

    [Fact]
    public void F16NaNStaysNaN()
    {
        using var dir = new TempDir();
        string path = dir.File("n.safetensors");
        new SafetensorsWriter().Add("h", Tensor.FromArray([float.NaN, F(0x7F800001)], 2), DType.F16).Write(path);
        using var f = SafetensorsFile.Open(path);
        var raw = f.RawBytes("h");
        foreach (ushort bits in new[] { BinaryPrimitives.ReadUInt16LittleEndian(raw), BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(2)) })
        {
            Assert.Equal(0x7C00, bits & 0x7C00);
            Assert.NotEqual(0, bits & 0x03FF);
        }
        Assert.All(f.ReadFloat32("h").ToArray(), v => Assert.True(float.IsNaN(v)));
    }

    public static TheoryData<uint, ushort> BFloatCases => new()
    {
        { 0x3F800000, 0x3F80 },                 // 1
        { 0x3DCCCCCD, 0x3DCD },                 // 0.1: low half 0xCCCD > 0x8000 rounds up
        { 0x3F808000, 0x3F80 },                 // 1 + 2^-8: tie, stays on even 0x3F80
        { 0x3F818000, 0x3F82 },                 // tie above odd 0x3F81 goes up to even
        { 0x3F808001, 0x3F81 },                 // just above a tie rounds up
        { 0x3F807FFF, 0x3F80 },                 // just below a tie rounds down
        { 0x7F7FFFFF, 0x7F80 },                 // float.MaxValue overflows to +Inf
        { 0xFF800000, 0xFF80 },                 // -Inf
        { 0x7FC00000, 0x7FC0 },                 // quiet NaN
        { 0x7F800001, 0x7FC0 },                 // signalling NaN with low payload must not truncate to Inf
        { 0xFF800001, 0xFFC0 },                 // negative NaN keeps its sign
        { 0x00000001, 0x0000 },                 // smallest float subnormal rounds to +0
        { 0x80000000, 0x8000 },                 // -0
    };

    [Theory, MemberData(nameof(BFloatCases))]
    public void BF16WriteRoundsToNearestEvenAndReadsBack(uint input, ushort expected)
    {
        using var dir = new TempDir();
        string path = dir.File("bf.safetensors");
        new SafetensorsWriter().Add("b", Tensor.FromArray([F(input)], 1), DType.BF16).Write(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16LittleEndian(f.RawBytes("b")));
        Assert.Equal((uint)expected << 16, BitConverter.SingleToUInt32Bits(f.ReadFloat32("b")[0]));
        Assert.Equal(expected, DTypes.FloatToBFloat16(F(input)));
    }

    [Fact]
    public void BF16VectorPathMatchesScalar()
    {
        // Enough elements to run the vectorised widening loop and its scalar tail.
        var rng = new Rng(11);
        var values = new float[1000];
        for (int i = 0; i < values.Length; i++) values[i] = (float)rng.Uniform(-1e4, 1e4);
        using var dir = new TempDir();
        string path = dir.File("bv.safetensors");
        new SafetensorsWriter().Add("b", Tensor.FromArray(values, 10, 100), DType.BF16).Write(path);
        using var f = SafetensorsFile.Open(path);
        var back = f.ReadFloat32("b", 10, 100).ToArray();
        for (int i = 0; i < values.Length; i++)
            Assert.Equal((uint)DTypes.FloatToBFloat16(values[i]) << 16, BitConverter.SingleToUInt32Bits(back[i]));
        var wide = f.ReadFloat64("b");
        for (int i = 0; i < values.Length; i++) Assert.Equal(back[i], wide[i]);
    }

    [Fact]
    public void EmptyTensorsAndScalarsWork()
    {
        using var dir = new TempDir();
        string path = dir.File("e.safetensors");
        new SafetensorsWriter().Add("empty", new Tensor(0, 4)).Add("scalar", Tensor.FromArray([2.5f])).Write(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal([0, 4], f.ReadFloat32("empty").Shape.ToArray());
        Assert.Equal(2.5f, f.ReadFloat32("scalar").Span[0]);

        string onlyEmpty = dir.File("e2.safetensors");
        new SafetensorsWriter().Add("empty", new Tensor(0)).Write(onlyEmpty);
        using var g = SafetensorsFile.Open(onlyEmpty);
        Assert.Equal(0, g.ReadFloat32("empty").Length);
    }

    [Fact]
    public void WriterRejectsBadInput()
    {
        var w = new SafetensorsWriter().Add("a", new Tensor(2));
        Assert.Throws<ArgumentException>(() => w.Add("a", new Tensor(2)));
        Assert.Throws<ArgumentException>(() => w.Add("__metadata__", new Tensor(2)));
        Assert.Throws<ArgumentException>(() => w.Add("i", new Tensor(2), DType.I32));
        Assert.Throws<ArgumentException>(() => w.AddInt64("n", [1L, 2L], 3));
        Assert.Throws<ArgumentException>(() => w.AddRaw("neg", DType.U8, [-1, -2], [1, 2]));
    }

    [Fact]
    public void UnicodeNamesRoundTrip()
    {
        using var dir = new TempDir();
        string path = dir.File("u.safetensors");
        new SafetensorsWriter().Add("blocks.0.\"ü\"\\名", Tensor.FromArray([1f], 1)).Write(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(1f, f.ReadFloat32("blocks.0.\"ü\"\\名")[0]);
    }

    [SharedFact("models/tiny-random-gpt2/model.safetensors", "models/tiny-random-gpt2/config.json")]
    public void ReadsRealGpt2Weights()
    {
        using var cfg = JsonDocument.Parse(File.ReadAllText(SharedData.Path("models/tiny-random-gpt2/config.json")));
        int vocab = cfg.RootElement.GetProperty("vocab_size").GetInt32();
        int d = cfg.RootElement.GetProperty("n_embd").GetInt32();
        int positions = cfg.RootElement.GetProperty("n_positions").GetInt32();
        int layers = cfg.RootElement.GetProperty("n_layer").GetInt32();

        using var f = SafetensorsFile.Open(SharedData.Path("models/tiny-random-gpt2/model.safetensors"));
        Assert.Equal("pt", f.Metadata["format"]);
        var wte = f.ReadFloat32("transformer.wte.weight", vocab, d);
        // First element, decoded independently from the file bytes with Python's struct module.
        Assert.Equal(-0.004600774496793747f, wte[0, 0]);
        Assert.Equal(-0.03363471478223801f, wte[0, 2]);
        Assert.Equal([positions, d], f.Entry("transformer.wpe.weight").Shape);
        // GPT-2 Conv1D layout: c_fc is [d, 4d] when n_inner is null.
        Assert.Equal([d, 4 * d], f.Entry($"transformer.h.{layers - 1}.mlp.c_fc.weight").Shape);
        Assert.Equal(-0.04098230600357056f, f.ReadFloat32($"transformer.h.{layers - 1}.mlp.c_fc.weight")[0, 0]);
        Assert.False(f.Contains($"transformer.h.{layers}.ln_1.weight"));

        using var m = SafetensorsModel.Open(System.IO.Path.GetDirectoryName(f.Path)!);
        Assert.Single(m.Shards);
        Assert.Equal(f.Names.Count, m.Names.Count);
        Assert.Equal(wte.ToArray(), m.ReadFloat32("transformer.wte.weight").ToArray());
    }

    [Fact]
    public void DisposedFileRefusesReads()
    {
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        new SafetensorsWriter().Add("a", new Tensor(3)).Write(path);
        var f = SafetensorsFile.Open(path);
        f.Dispose();
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.ReadFloat32("a"));
    }

    internal static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}
