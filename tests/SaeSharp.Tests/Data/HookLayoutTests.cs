using SaeSharp.Data;
using SaeSharp.Tensors;
using Xunit;

namespace SaeSharp.Tests.Data;

public class HookLayoutTests
{
    private static readonly HookLayout Three = new([("blocks.0.hook_resid_post", 2), ("blocks.1.ln2.hook_normalized", 3), ("blocks.1.hook_mlp_out", 1)]);

    [Fact]
    public void FindsHooksBySpecInTheSpecsOrder()
    {
        Assert.Equal(6, Three.Width);
        Assert.Equal([new HookSlot("blocks.1.ln2.hook_normalized", 2, 3)], Three.Find("blocks.1.ln2.hook_normalized", "hook_name"));
        // Several comma-separated hooks: their slots in the spec's order, not the layout's.
        Assert.Equal([2, 0], Three.Find("blocks.1.ln2.hook_normalized, blocks.0.hook_resid_post", "hook_name").Select(s => s.Offset));
        var e = Assert.Throws<ArgumentException>(() => Three.Find("blocks.2.hook_mlp_out", "hook_name_out"));
        Assert.Contains("hook_name_out", e.Message);
        Assert.Contains("blocks.1.hook_mlp_out (1 columns)", e.Message);
        // A cache of concatenated hooks names its slot by the whole spec.
        var cache = new HookLayout([("a,b", 4), ("c", 2)]);
        Assert.Equal([new HookSlot("a,b", 0, 4)], cache.Find("a,b", "hook_name"));
        // An unnamed matrix: any spec selects all of it.
        Assert.Equal([new HookSlot(null, 0, 5)], HookLayout.Unnamed(5).Find("whatever", "hook_name"));
        Assert.Throws<ArgumentException>(() => new HookLayout([("a", 2), ("a", 3)]));
    }

    [Fact]
    public void GatherCopiesAndScalesBlocksSideBySide()
    {
        var wide = Tensor.FromArray([0f, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15], 2, 6);
        var slots = Three.Slots;
        var g = new ColumnGather([(slots[1], 2f), (slots[2], 0.5f)], 6);
        Assert.Equal(4, g.Width);
        Assert.False(g.IsIdentity);
        Assert.Equal([4f, 6, 8, 2.5f, 24, 26, 28, 7.5f], g.Apply(wide).ToArray());
        var all = new ColumnGather(slots.Select(s => (s, 1f)), 6);
        Assert.True(all.IsIdentity);
        Assert.Same(wide, all.Apply(wide));
        // The same blocks reordered are not the identity.
        Assert.False(new ColumnGather([(slots[1], 1f), (slots[0], 1f), (slots[2], 1f)], 6).IsIdentity);
        Assert.Throws<ArgumentException>(() => new ColumnGather([(new HookSlot("x", 5, 3), 1f)], 6));
    }
}
