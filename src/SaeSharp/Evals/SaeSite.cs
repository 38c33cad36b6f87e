using System.Text.Json.Nodes;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Evals;

/// <summary>
/// Where an SAE sits in a model: the hook it reads (<see cref="InputHook"/>) and the hook its output stands for
/// (<see cref="OutputHook"/>: the same one for an SAE, the MLP output for a transcoder), each with an optional head
/// index. Every hook here is position-major: a position's activation is one contiguous run of <c>stride</c> floats
/// (<c>[d]</c>, or <c>[heads, d_head]</c> for hook_q/k/v/z, flattened as SAELens's hook_z reshaping does). With a head
/// index only that head's <c>d_head</c> slice is read or written (SAELens hook_head_index).
/// </summary>
public sealed record SaeSite
{
    /// <summary>Hook whose activation is the SAE's input.</summary>
    public required string InputHook { get; init; }
    /// <summary>Hook whose activation the SAE's output replaces (equal to <see cref="InputHook"/> except for transcoders).</summary>
    public required string OutputHook { get; init; }
    public int? InputHeadIndex { get; init; }
    public int? OutputHeadIndex { get; init; }
    /// <summary>Floats per position at the input hook, and the offset and width of the part the SAE reads.</summary>
    public required int InputStride { get; init; }
    public required int InputOffset { get; init; }
    public required int InputWidth { get; init; }
    /// <summary>Floats per position at the output hook, and the offset and width of the part the SAE writes.</summary>
    public required int OutputStride { get; init; }
    public required int OutputOffset { get; init; }
    public required int OutputWidth { get; init; }

    /// <summary>The SAE's input and output hooks differ (a transcoder).</summary>
    public bool IsCrossHook => InputHook != OutputHook || InputHeadIndex != OutputHeadIndex;

    /// <summary>
    /// The site of an SAE whose input is <paramref name="inputHook"/> (head <paramref name="inputHead"/>) and whose
    /// output replaces <paramref name="outputHook"/> (head <paramref name="outputHead"/>), checked against the model:
    /// both hooks exist and are position-major, the heads exist, the input comes no later than the output in the
    /// forward, and the widths equal <paramref name="dIn"/> and <paramref name="dOut"/>. <paramref name="source"/>
    /// names the SAE in errors.
    /// </summary>
    public static SaeSite Create(HookedTransformer model, string inputHook, int? inputHead, string outputHook, int? outputHead,
        int dIn, int dOut, string source)
    {
        var names = model.HookNames;
        foreach (var h in new[] { inputHook, outputHook })
        {
            if (h.Contains(','))
                throw new ArgumentException($"{source}: hook '{h}' names several hooks; an SAE spliced into a model reads and writes one hook");
            if (!names.Contains(h))
                throw new ArgumentException($"{source}: hook '{h}' is not a hook point of the model ({model.Config.Architecture}, {model.Config.NLayers} layers, d_model {model.Config.DModel})");
            if (h.EndsWith("hook_pattern", StringComparison.Ordinal))
                throw new ArgumentException($"{source}: hook '{h}' holds [head, query, key] attention patterns, not one activation per position");
        }
        if (IndexOf(names, inputHook) > IndexOf(names, outputHook))
            throw new ArgumentException($"{source}: input hook '{inputHook}' comes after output hook '{outputHook}' in the forward pass");
        var probe = model.RunWithCache([0], new[] { inputHook, outputHook }.Distinct().ToArray(), returnLogits: false).Cache;
        var (inStride, inOffset, inWidth) = Layout(probe[inputHook], inputHook, inputHead, source);
        var (outStride, outOffset, outWidth) = Layout(probe[outputHook], outputHook, outputHead, source);
        if (inWidth != dIn)
            throw new ArgumentException($"{source}: d_in {dIn} does not fit hook '{inputHook}'{HeadText(inputHead)} of the model (width {inWidth})");
        if (outWidth != dOut)
            throw new ArgumentException($"{source}: d_out {dOut} does not fit output hook '{outputHook}'{HeadText(outputHead)} of the model (width {outWidth})");
        return new SaeSite
        {
            InputHook = inputHook, OutputHook = outputHook, InputHeadIndex = inputHead, OutputHeadIndex = outputHead,
            InputStride = inStride, InputOffset = inOffset, InputWidth = inWidth,
            OutputStride = outStride, OutputOffset = outOffset, OutputWidth = outWidth,
        };
    }

    /// <summary>
    /// The site of a saved SAE from its cfg.json metadata: <c>hook_name</c> (or <paramref name="fallbackHook"/> when the
    /// cfg has none), <c>hook_head_index</c>, and for transcoders <c>hook_name_out</c> and <c>hook_head_index_out</c>.
    /// </summary>
    public static SaeSite For(HookedTransformer model, SaeConfig config, string source, string? fallbackHook = null)
    {
        var meta = config.Metadata;
        string hook = MetaString(meta, "hook_name", source) ?? fallbackHook
            ?? throw new ArgumentException($"{source}: cfg metadata has no hook_name; say which hook the SAE reads (eval setting hook_name)");
        int? head = MetaInt(meta, "hook_head_index", source);
        string outHook = hook;
        int? outHead = head;
        if (config.IsTranscoder)
        {
            outHook = MetaString(meta, "hook_name_out", source)
                ?? throw new ArgumentException($"{source}: {config.Architecture} needs metadata.hook_name_out (the hook its output replaces, e.g. blocks.0.hook_mlp_out)");
            outHead = MetaInt(meta, "hook_head_index_out", source);
        }
        return Create(model, hook, head, outHook, outHead, config.DIn, config.OutDim, source);
    }

    /// <summary>Positions held by a hook view (<c>[batch, pos, ...]</c> or <c>[pos, ...]</c>) at the input hook.</summary>
    public int InputRows(Tensor view) => Rows(view, InputStride, InputHook);

    /// <summary>Positions held by a hook view at the output hook.</summary>
    public int OutputRows(Tensor view) => Rows(view, OutputStride, OutputHook);

    /// <summary>The SAE's input rows <c>[positions, d_in]</c> from a view of the input hook.</summary>
    public Tensor GatherInput(Tensor view) => Gather(view, InputStride, InputOffset, InputWidth, InputHook);

    /// <summary>The rows the SAE's output stands for, <c>[positions, d_out]</c>, from a view of the output hook.</summary>
    public Tensor GatherOutput(Tensor view) => Gather(view, OutputStride, OutputOffset, OutputWidth, OutputHook);

    /// <summary>
    /// Writes <paramref name="rows"/> <c>[positions, d_out]</c> into a view of the output hook at the positions
    /// <paramref name="positions"/> selects (all when null); other positions, and other heads, keep their values.
    /// </summary>
    public void ScatterOutput(Tensor view, Tensor rows, ReadOnlySpan<bool> positions = default)
    {
        int n = OutputRows(view);
        rows.EnsureShape($"rows written to '{OutputHook}'", n, OutputWidth);
        CheckPositions(positions, n);
        var dst = view.Span;
        for (int r = 0; r < n; r++)
            if (positions.IsEmpty || positions[r]) rows.Row(r).CopyTo(dst.Slice(r * OutputStride + OutputOffset, OutputWidth));
    }

    /// <summary>Sets the SAE's part of a view of the output hook to <paramref name="value"/> (d_out floats) at the selected positions.</summary>
    public void FillOutput(Tensor view, ReadOnlySpan<float> value, ReadOnlySpan<bool> positions = default)
    {
        if (value.Length != OutputWidth) throw new ArgumentException($"fill value for '{OutputHook}' has {value.Length} entries, expected {OutputWidth}");
        int n = OutputRows(view);
        CheckPositions(positions, n);
        var dst = view.Span;
        for (int r = 0; r < n; r++)
            if (positions.IsEmpty || positions[r]) value.CopyTo(dst.Slice(r * OutputStride + OutputOffset, OutputWidth));
    }

    private static Tensor Gather(Tensor view, int stride, int offset, int width, string hook)
    {
        int n = Rows(view, stride, hook);
        var rows = Tensor.Uninitialized(n, width);
        var src = view.Span;
        if (width == stride) src.CopyTo(rows.Span);
        else for (int r = 0; r < n; r++) src.Slice(r * stride + offset, width).CopyTo(rows.Row(r));
        return rows;
    }

    private static int Rows(Tensor view, int stride, string hook)
    {
        if (view.Length % stride != 0) throw new ArgumentException($"activation at '{hook}' of shape [{view.ShapeString}] is not whole positions of {stride} floats");
        return view.Length / stride;
    }

    private static void CheckPositions(ReadOnlySpan<bool> positions, int rows)
    {
        if (!positions.IsEmpty && positions.Length != rows)
            throw new ArgumentException($"position mask has {positions.Length} entries for {rows} positions");
    }

    /// <summary>Stride, offset and width at a hook from its one-position activation <c>[1, ...]</c>.</summary>
    private static (int Stride, int Offset, int Width) Layout(Tensor probe, string hook, int? head, string source)
    {
        int stride = probe.Length / probe.Dim(0);
        if (head is not int h) return (stride, 0, stride);
        if (probe.Rank != 3)
            throw new ArgumentException($"{source}: hook_head_index {h}: hook '{hook}' has no head dimension (per-position shape [{stride}])");
        if (h < 0 || h >= probe.Dim(1))
            throw new ArgumentException($"{source}: hook_head_index {h} is out of range for the {probe.Dim(1)} heads at '{hook}'");
        return (stride, h * probe.Dim(2), probe.Dim(2));
    }

    private static string HeadText(int? head) => head is int h ? $" head {h}" : "";

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++) if (names[i] == name) return i;
        return -1;
    }

    private static string? MetaString(JsonObject meta, string key, string source)
    {
        var v = meta[key];
        if (v is null) return null;
        return v is JsonValue jv && jv.TryGetValue(out string? s) ? s
            : throw new InvalidDataException($"{source}: metadata.{key} must be a string, got {v.ToJsonString()}");
    }

    private static int? MetaInt(JsonObject meta, string key, string source)
    {
        var v = meta[key];
        if (v is null) return null;
        return v is JsonValue jv && jv.TryGetValue(out int i) ? i
            : throw new InvalidDataException($"{source}: metadata.{key} must be an integer or null, got {v.ToJsonString()}");
    }
}

/// <summary>An SAE placed in a model: a name for reports, the SAE, and its <see cref="SaeSite"/>.</summary>
public sealed record HookedSae(string Name, Sae Sae, SaeSite Site)
{
    /// <summary>A saved SAE loaded from <paramref name="folder"/> (SAELens layout) and placed in <paramref name="model"/> by its cfg metadata.</summary>
    public static HookedSae Load(HookedTransformer model, string folder, Compute compute, string? name = null, string? fallbackHook = null)
    {
        var sae = SaeFiles.Load(folder, compute);
        string source = Path.Combine(folder, SaeFiles.ConfigFile);
        return new HookedSae(name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder))), sae,
            SaeSite.For(model, sae.Config, source, fallbackHook));
    }
}
