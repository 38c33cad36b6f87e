using System.Buffers.Binary;
using System.Text;
using SaeSharp.IO;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.IO;

public class SafetensorsCorruptTests
{
    /// <summary>Writes 8-byte length + <paramref name="header"/> + <paramref name="dataBytes"/> zero bytes.</summary>
    private static string Make(TempDir dir, string header, int dataBytes, ulong? lengthField = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthField ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        string path = dir.File("bad.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void AssertBad(string path, string problem)
    {
        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, ex.Message);
        Assert.Contains(problem, ex.Message);
    }

    public static TheoryData<string, string, int, string> BadHeaders => new()
    {
        { "bad JSON", "{\"a\": {\"dtype\": \"F32\",", 0, "not valid JSON" },
        { "empty header", "", 0, "not valid JSON" },
        { "header is an array", "[1, 2]", 0, "expected an object" },
        { "header is a string", "\"hi\"", 0, "expected an object" },
        { "entry not an object", "{\"a\": 3}", 0, "entry is not an object" },
        { "missing dtype", "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "missing string 'dtype'" },
        { "unknown dtype", "{\"a\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, "unsupported dtype 'F8_E4M3'" },
        { "missing shape", "{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "missing array 'shape'" },
        { "negative shape", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, "shape entry -1 is not a non-negative integer" },
        { "fractional shape", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, "shape entry 1.5 is not a non-negative integer" },
        { "string shape", "{\"a\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", 8, "is not a non-negative integer" },
        { "huge shape", "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296], \"data_offsets\": [0, 4]}}", 4, "is not a non-negative integer" },
        { "overflowing shape product", "{\"a\": {\"dtype\": \"F64\", \"shape\": [2147483647, 2147483647, 2147483647], \"data_offsets\": [0, 8]}}", 8, "data_offsets span 8" },
        { "offsets not a pair", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "must be [begin, end]" },
        { "negative offset", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4, "data offset -4 is not a non-negative integer" },
        { "end before begin", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8, "end before they begin" },
        { "offsets out of range", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, "run past the data section" },
        { "huge offsets", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [1152921504606846976, 1152921504606846980]}}", 4, "run past the data section" },
        { "shape/bytes mismatch", "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "needs 12 bytes but data_offsets span 8" },
        { "overlapping offsets", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, "overlap" },
        { "duplicate tensor", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "appears twice" },
        // The safetensors format (and Hugging Face's reader) requires the tensors to tile the data section exactly.
        { "gap between tensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 12, "4 unused bytes before tensor 'b'" },
        { "gap at the start", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "4 unused bytes before tensor 'a'" },
        { "trailing bytes", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 12, "8 bytes after the last tensor" },
        { "data but no tensors", "{}", 4, "4 bytes after the last tensor" },
        { "metadata not strings", "{\"__metadata__\": {\"k\": 1}}", 0, "__metadata__ value 'k' is not a string" },
        { "metadata not an object", "{\"__metadata__\": [1]}", 0, "__metadata__ is not an object" },
    };

    [Theory, MemberData(nameof(BadHeaders))]
    public void BadHeaderIsNamed(string label, string header, int dataBytes, string problem)
    {
        Assert.NotEmpty(label);
        using var dir = new TempDir();
        AssertBad(Make(dir, header, dataBytes), problem);
    }

    [Fact]
    public void TooManyTensorsAreRefusedBeforeTheyAreBuilt()
    {
        // A valid header of many zero-size tensors cost ~700 bytes of entries each (1.4M tensors: 975 MB).
        using var dir = new TempDir();
        var sb = new StringBuilder("{");
        for (int i = 0; i <= SafetensorsFile.MaxTensors; i++)
            sb.Append(i == 0 ? "" : ",").Append("\"t").Append(i).Append("\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}");
        AssertBad(Make(dir, sb.Append('}').ToString(), 0), $"more than the {SafetensorsFile.MaxTensors} tensors");
    }

    [Fact]
    public void OverlongTensorNameIsRefused()
    {
        using var dir = new TempDir();
        string name = new('n', SafetensorsFile.MaxNameBytes + 1);
        AssertBad(Make(dir, $"{{\"{name}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}}}", 0),
            $"a tensor name of {SafetensorsFile.MaxNameBytes + 1} bytes");
        // At the limit it is fine.
        string ok = Make(dir, $"{{\"{name[1..]}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}}}", 0);
        using var f = SafetensorsFile.Open(ok);
        Assert.Equal(name[1..], Assert.Single(f.Names));
    }

    [Fact]
    public void InvalidUtf8Header()
    {
        using var dir = new TempDir();
        string path = dir.File("utf.safetensors");
        byte[] header = [(byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)':', (byte)'1', (byte)'}'];
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        AssertBad(path, "not valid JSON");
    }

    [Fact]
    public void FileShorterThanEightBytes()
    {
        using var dir = new TempDir();
        string path = dir.File("tiny.safetensors");
        File.WriteAllBytes(path, [1, 0, 0]);
        AssertBad(path, "shorter than the 8-byte header length");
        File.WriteAllBytes(path, []);
        AssertBad(path, "file is 0 bytes");
    }

    [Fact]
    public void HeaderLengthPastEnd()
    {
        using var dir = new TempDir();
        AssertBad(Make(dir, "{}", 0, lengthField: 100), "header length 100 runs past the end of the file");
    }

    [Fact]
    public void HugeHeaderLengthIsRefusedBeforeAllocating()
    {
        using var dir = new TempDir();
        AssertBad(Make(dir, "{}", 0, lengthField: 1UL << 60), $"header length {1UL << 60} runs past the end");
        AssertBad(Make(dir, "{}", 0, lengthField: ulong.MaxValue), "runs past the end");
    }

    [Fact]
    public void TruncatedFile()
    {
        using var dir = new TempDir();
        string path = dir.File("t.safetensors");
        new SafetensorsWriter().Add("w", new Tensor(4, 4)).Add("b", new Tensor(4)).Write(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^3]);
        AssertBad(path, "tensor 'b': data_offsets [64, 80] run past the data section (77 bytes");
        // Cut inside the header too.
        File.WriteAllBytes(path, bytes[..20]);
        AssertBad(path, "runs past the end of the file (20 bytes)");
    }

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(dir.File("none.safetensors")));
        Assert.Contains("none.safetensors", ex.Message);
    }

    /// <summary>Random byte flips, truncations and length-field edits of a valid file: each must either open and read,
    /// or throw InvalidDataException, never anything else (no crash, no out-of-memory, no access violation).</summary>
    [Fact]
    public void RandomCorruptionNeverCrashes()
    {
        using var dir = new TempDir();
        string good = dir.File("good.safetensors");
        new SafetensorsWriter()
            .Add("a", Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 2, 3))
            .Add("h", Tensor.FromArray([1f, -1f], 2), DType.BF16)
            .AddInt64("ids", [1L, 2L, 3L], 3)
            .AddMetadata("format", "pt")
            .Write(good);
        var original = File.ReadAllBytes(good);
        var rng = new Rng(1234);
        string path = dir.File("fuzz.safetensors");
        int opened = 0, rejected = 0;
        for (int iter = 0; iter < 400; iter++)
        {
            var bytes = (byte[])original.Clone();
            switch (iter % 4)
            {
                case 0: // flip a few bytes anywhere
                    for (int k = 0; k < 1 + rng.NextInt(3); k++) bytes[rng.NextInt(bytes.Length)] = (byte)rng.NextInt(256);
                    break;
                case 1: // flip a byte inside the header's JSON
                    {
                        int hl = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
                        bytes[8 + rng.NextInt(hl)] = (byte)rng.NextInt(256);
                        break;
                    }
                case 2: // truncate
                    bytes = bytes[..rng.NextInt(bytes.Length)];
                    break;
                case 3: // random header length
                    BinaryPrimitives.WriteUInt64LittleEndian(bytes, rng.NextUInt64() >> rng.NextInt(64));
                    break;
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                using var f = SafetensorsFile.Open(path);
                foreach (var name in f.Names)
                {
                    f.ReadFloat32(name);
                    f.RawBytes(name);
                    f.ReadFloat64(name);
                }
                opened++;
            }
            catch (InvalidDataException ex)
            {
                Assert.Contains(path, ex.Message);
                rejected++;
            }
        }
        Assert.True(rejected > 100, $"only {rejected} corruptions rejected");
        Assert.True(opened > 0, "no corruption was harmless; the test is not exercising reads");
    }
}
