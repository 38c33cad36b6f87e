using SaeSharp.Data;
using SaeSharp.Tensors;
using Xunit;

namespace SaeSharp.Tests.Data;

public class MixingBufferTests
{
    // Rows carry their own index in column 0 so the test can see which rows come out.
    private static Func<Tensor?> Producer(int chunks, int rowsPerChunk)
    {
        int c = 0;
        return () =>
        {
            if (c == chunks) return null;
            var t = new Tensor(rowsPerChunk, 2);
            for (int i = 0; i < rowsPerChunk; i++) { t.Row(i)[0] = c * rowsPerChunk + i; t.Row(i)[1] = -1; }
            c++;
            return t;
        };
    }

    private static List<int> Drain(MixingBuffer b, int batch)
    {
        var seen = new List<int>();
        var t = new Tensor(batch, 2);
        while (b.Next(t)) for (int i = 0; i < batch; i++) seen.Add((int)t.Row(i)[0]);
        return seen;
    }

    [Fact]
    public void EveryRowExactlyOncePerPassAndMixed()
    {
        var seen = Drain(new MixingBuffer(2, 32, Producer(10, 8), seed: 3), 4);
        Assert.Equal(Enumerable.Range(0, 80), seen.OrderBy(x => x));
        Assert.NotEqual(Enumerable.Range(0, 80), seen);
        // With half the buffer kept back, some early rows must be served after later chunks arrived.
        Assert.True(seen.IndexOf(0) > 0 || seen.Take(16).Any(x => x >= 32));
    }

    [Fact]
    public void SeededAndRestorable()
    {
        var a = Drain(new MixingBuffer(2, 16, Producer(6, 8), seed: 9), 4);
        Assert.Equal(a, Drain(new MixingBuffer(2, 16, Producer(6, 8), seed: 9), 4));
        var b = new MixingBuffer(2, 16, Producer(6, 8), seed: 9);
        var t = new Tensor(4, 2);
        for (int i = 0; i < 3; i++) Assert.True(b.Next(t));
        var pos = b.Position;
        var c = new MixingBuffer(2, 16, Producer(6, 8), seed: 9);
        c.Restore(pos);
        Assert.Equal(a.Skip(12), Drain(c, 4));
    }
}
