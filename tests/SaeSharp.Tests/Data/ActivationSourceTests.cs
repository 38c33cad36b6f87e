using SaeSharp.Data;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Data;

public class ActivationSourceTests
{
    private static Tensor Rows(int n, int d)
    {
        var t = new Tensor(n, d);
        for (int r = 0; r < n; r++) t.Row(r).Fill(r);
        return t;
    }

    [Fact]
    public void EveryRowOncePerEpochAndResumable()
    {
        var src = new InMemoryActivationSource(Rows(10, 3), seed: 4);
        var batch = new Tensor(5, 3);
        var seen = new List<float>();
        for (int i = 0; i < 2; i++) { Assert.True(src.Next(batch)); for (int r = 0; r < 5; r++) seen.Add(batch[r, 0]); }
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (float)i), seen.OrderBy(v => v));

        src.Next(batch); // into epoch 2
        var saved = src.Position;
        var expected = new List<float[]>();
        for (int i = 0; i < 3; i++) { src.Next(batch); expected.Add(batch.ToArray()); }

        var resumed = new InMemoryActivationSource(Rows(10, 3), seed: 999);
        resumed.Restore(saved);
        for (int i = 0; i < 3; i++) { resumed.Next(batch); Assert.Equal(expected[i], batch.ToArray()); }
    }

    [Fact]
    public void FiniteSourceEndsAndBadInputIsRejected()
    {
        var src = new InMemoryActivationSource(Rows(4, 2), 1, shuffle: false, endless: false);
        var batch = new Tensor(4, 2);
        Assert.True(src.Next(batch));
        Assert.False(src.Next(batch));
        var bad = Rows(3, 2);
        bad[1, 1] = float.NaN;
        Assert.Throws<InvalidDataException>(() => new InMemoryActivationSource(bad, 1));
        Assert.Throws<InvalidDataException>(() => new InMemoryActivationSource(Rows(4, 2), 1).Restore(new Dictionary<string, string> { ["epoch"] = "0" }));
    }
}
