using SaeSharp.Tensors;

namespace SaeSharp.Tests.Tensors;

public class TensorTests
{
    [Fact]
    public void RowsAndViewsShareStorage()
    {
        var t = new Tensor(3, 4);
        t[1, 2] = 5;
        Assert.Equal(5, t.Row(1)[2]);
        var v = t.Reshape(2, -1);
        Assert.Equal(new[] { 2, 6 }, v.Shape.ToArray());
        Assert.Equal(5, v[1, 0]);
        var s = t.RowSlice(1, 2);
        s[0, 0] = 7;
        Assert.Equal(7, t[1, 0]);
    }

    [Fact]
    public void BadShapesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new Tensor(new float[5], 2, 3));
        Assert.Throws<ArgumentException>(() => new Tensor(3, 4).Reshape(5, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Tensor(3, 4).Row(3));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(70_000)]
    [InlineData(199_999)]
    public void IndexOfNonFiniteFindsTheFirstOne(int at)
    {
        var t = new Tensor(200, 1000);
        Assert.Equal(-1, t.IndexOfNonFinite());
        t.Span[at] = float.PositiveInfinity;
        t.Span[199_999] = float.NaN;
        Assert.Equal(at, t.IndexOfNonFinite());
        Assert.Equal($"[{at / 1000}, {at % 1000}]", t.IndexString(at));
    }

    [Fact]
    public void HugeFiniteValuesAreFinite()
    {
        // A chunk's sum of magnitudes overflows to infinity although every element is finite.
        var t = new Tensor(70_000);
        t.Span.Fill(float.MaxValue);
        Assert.Equal(-1, t.IndexOfNonFinite());
    }
}
