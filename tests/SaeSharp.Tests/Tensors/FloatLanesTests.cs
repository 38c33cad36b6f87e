using SaeSharp.Tensors;

namespace SaeSharp.Tests.Tensors;

public class FloatLanesTests
{
    private const int Length = 48; // a multiple of every width

    // Every operation of the lanes over a and b (chunk by chunk), as raw bits per lane, so results compare exactly.
    private static Dictionary<string, long[]> Results<T>(float[] a, float[] b) where T : struct, IFloatLanes<T>
    {
        var ops = new (string Name, Func<T, T, T> Op)[]
        {
            ("+", (x, y) => x + y), ("-", (x, y) => x - y), ("*", (x, y) => x * y), ("/", (x, y) => x / y),
            ("&", (x, y) => x & y), ("|", (x, y) => x | y), ("~", (x, _) => ~x),
            (">", T.GreaterThan), ("<", T.LessThan), ("==", T.EqualTo),
            ("select", (x, y) => T.Select(T.GreaterThan(x, y), x, y)), ("abs", (x, _) => T.Abs(x)), ("sqrt", (x, _) => T.Sqrt(x)),
            ("create", (x, _) => T.Create(a[0])), ("zero", (_, _) => T.Zero),
        };
        var results = new Dictionary<string, long[]>();
        var outBuf = new float[Length];
        foreach (var (name, op) in ops)
        {
            for (int j = 0; j < Length; j += T.Count) op(T.Load(a, j), T.Load(b, j)).Store(outBuf, j);
            results[name] = outBuf.Select(v => (long)BitConverter.SingleToInt32Bits(v)).ToArray();
        }
        var bits = new long[Length];
        var widened = Enumerable.Range(0, Length).Select(i => (double)i).ToArray();
        for (int j = 0; j < Length; j += T.Count)
        {
            uint mask = T.Bits(T.GreaterThan(T.Load(a, j), T.Load(b, j)));
            for (int t = 0; t < T.Count; t++) bits[j + t] = (mask >> t) & 1;
            Assert.Equal(0u, mask >> T.Count); // no bits beyond the lanes
            T.Load(a, j).AddWidenedTo(widened, j);
        }
        results["bits"] = bits;
        results["widened"] = widened.Select(BitConverter.DoubleToInt64Bits).ToArray();
        return results;
    }

    [Theory]
    [MemberData(nameof(SimdPaths.Widths), MemberType = typeof(SimdPaths))]
    public void EveryOperationGivesTheScalarLaneBits(string width)
    {
        var rng = new Rng(17);
        var a = SimdPaths.Values(Length, rng, 0.4);
        var b = SimdPaths.Values(Length, rng, 0.4);
        var expected = Results<F32x1>(a, b);
        var got = SimdPaths.Parse(width) switch
        {
            SimdWidth.V512 => Results<F32x16>(a, b),
            SimdWidth.V256 => Results<F32x8>(a, b),
            SimdWidth.V128 => Results<F32x4>(a, b),
            _ => Results<F32x1>(a, b),
        };
        foreach (var (name, bits) in expected) Assert.True(bits.SequenceEqual(got[name]), $"{name} differs from one lane at a time");
        // And the single lane against plain float arithmetic.
        for (int i = 0; i < Length; i++)
        {
            Assert.Equal(a[i] + b[i], BitConverter.Int32BitsToSingle((int)expected["+"][i]));
            Assert.Equal(a[i] / b[i], BitConverter.Int32BitsToSingle((int)expected["/"][i]));
            Assert.Equal(MathF.Sqrt(a[i]), BitConverter.Int32BitsToSingle((int)expected["sqrt"][i]));
            Assert.Equal(a[i] > b[i] ? 1 : 0, expected["bits"][i]);
            Assert.Equal(a[i] > b[i] ? -1 : 0, expected[">"][i]);
            Assert.Equal(a[i] > b[i] ? a[i] : b[i], BitConverter.Int32BitsToSingle((int)expected["select"][i]));
            Assert.Equal(i + (double)a[i], BitConverter.Int64BitsToDouble(expected["widened"][i]));
        }
    }
}
