using SaeSharp.Tensors;

namespace SaeSharp.Data;

/// <summary>One hook's columns in a stream's rows: [<paramref name="Offset"/>, <paramref name="Offset"/> + <paramref name="Width"/>).</summary>
public sealed record HookSlot(string? Hook, int Offset, int Width);

/// <summary>
/// Where each hook's activations sit in the rows of an activation stream: hooks side by side, as a model stream over
/// several hooks (or a cache of paired hooks) writes them. Rows move through the mixing buffer whole, so the columns of
/// one position (an SAE's input and a transcoder's target, or the hooks of several SAEs) stay together.
/// </summary>
public sealed class HookLayout
{
    public HookLayout(IEnumerable<(string? Hook, int Width)> hooks)
    {
        var slots = new List<HookSlot>();
        int at = 0;
        foreach (var (hook, width) in hooks)
        {
            if (width < 1) throw new ArgumentException($"hook '{hook}' has width {width}");
            if (hook is not null && slots.Any(s => s.Hook == hook)) throw new ArgumentException($"hook '{hook}' appears twice in the layout");
            slots.Add(new HookSlot(hook, at, width));
            at += width;
        }
        if (slots.Count == 0) throw new ArgumentException("a layout needs at least one hook");
        if (slots.Count > 1 && slots.Any(s => s.Hook is null)) throw new ArgumentException("only a single-column-block layout may leave its hook unnamed");
        Slots = slots;
        Width = at;
    }

    /// <summary>Rows of <paramref name="width"/> columns whose hook is not known (an in-memory matrix); any hook name selects them.</summary>
    public static HookLayout Unnamed(int width) => new([(null, width)]);

    public IReadOnlyList<HookSlot> Slots { get; }
    /// <summary>Columns of a row.</summary>
    public int Width { get; }
    public IEnumerable<string> Hooks => Slots.Where(s => s.Hook is not null).Select(s => s.Hook!);

    /// <summary>
    /// The columns of a hook spec: a slot of that exact name (a cache's concatenated "a,b"), else one slot per
    /// comma-separated hook, in the spec's order. Null selects every column of an unnamed layout.
    /// </summary>
    public HookSlot[] Find(string? spec, string setting)
    {
        if (Slots is [{ Hook: null } only]) return [only];
        if (spec is null) throw new ArgumentException($"{setting}: give the hook to train on; the stream holds {Describe()}");
        if (Slots.FirstOrDefault(s => s.Hook == spec) is { } exact) return [exact];
        var hooks = ActivationStore.Hooks(spec);
        var found = new HookSlot[hooks.Length];
        for (int i = 0; i < hooks.Length; i++)
            found[i] = Slots.FirstOrDefault(s => s.Hook == hooks[i])
                       ?? throw new ArgumentException($"{setting}: hook '{hooks[i]}' is not in the activations, which hold {Describe()}");
        return found;
    }

    private string Describe() => string.Join(", ", Slots.Select(s => $"{s.Hook ?? "unnamed"} ({s.Width} columns)"));
}

/// <summary>
/// Copies column blocks of wide rows side by side into narrow rows, each block multiplied by its own factor: the
/// rows one SAE of a sweep trains on (its input hooks, then a transcoder's target) out of the stream's rows.
/// </summary>
public sealed class ColumnGather
{
    private readonly (int Offset, int Width, float Scale)[] _parts;

    public ColumnGather(IEnumerable<(HookSlot Slot, float Scale)> parts, int sourceWidth)
    {
        _parts = [.. parts.Select(p => (p.Slot.Offset, p.Slot.Width, p.Scale))];
        if (_parts.Length == 0) throw new ArgumentException("a gather needs at least one block of columns");
        foreach (var (offset, width, _) in _parts)
            if (offset < 0 || offset + width > sourceWidth) throw new ArgumentException($"columns [{offset}, {offset + width}) lie outside rows of {sourceWidth}");
        SourceWidth = sourceWidth;
        Width = _parts.Sum(p => p.Width);
        int at = 0;
        IsIdentity = true;
        foreach (var (offset, width, scale) in _parts)
        {
            IsIdentity &= offset == at && scale == 1;
            at += width;
        }
        IsIdentity &= at == sourceWidth;
    }

    public int SourceWidth { get; }
    /// <summary>Columns of a gathered row.</summary>
    public int Width { get; }
    /// <summary>Whether a gathered row equals the source row (one block, all of it, unscaled): no copy is needed.</summary>
    public bool IsIdentity { get; }

    /// <summary>Writes the gathered rows of <paramref name="wide"/> into <paramref name="narrow"/> [wide.Rows, Width].</summary>
    public void Apply(Tensor wide, Tensor narrow)
    {
        wide.EnsureShape("stream rows", wide.Rows, SourceWidth);
        narrow.EnsureShape("gathered rows", wide.Rows, Width);
        for (int r = 0; r < wide.Rows; r++)
        {
            var src = wide.Row(r); var dst = narrow.Row(r);
            int at = 0;
            foreach (var (offset, width, scale) in _parts)
            {
                var d = dst.Slice(at, width);
                if (scale == 1) src.Slice(offset, width).CopyTo(d);
                else System.Numerics.Tensors.TensorPrimitives.Multiply(src.Slice(offset, width), scale, d);
                at += width;
            }
        }
    }

    /// <summary>The gathered rows of <paramref name="wide"/> (the rows themselves when the gather is the identity).</summary>
    public Tensor Apply(Tensor wide)
    {
        if (IsIdentity) return wide;
        var narrow = Tensor.Uninitialized(wide.Rows, Width);
        Apply(wide, narrow);
        return narrow;
    }
}
