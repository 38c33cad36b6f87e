using System.Numerics.Tensors;
using SaeSharp.Models;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Evals;

/// <summary>
/// Hooks that splice an SAE into a forward pass, or ablate what it stands for, at its <see cref="SaeSite"/>. Each
/// takes an optional position mask over the rows of the hook's view (<c>batch·pos</c> in a batched run, <c>pos</c>
/// for one sequence): only selected positions are replaced, the rest keep the model's own activations (SAELens's
/// exclusion of special tokens from the splice). Only the SAE's part of the hook changes: one head with a head index.
/// </summary>
public static class SaeSplice
{
    /// <summary>
    /// Replaces the activation at the SAE's output hook with the SAE's output for the input it reads in this same pass;
    /// with <paramref name="withError"/> the error term (true activation − output) is added back, so the model
    /// downstream sees its own activation to float rounding (SAELens use_error_term). For a transcoder the input is
    /// captured at its input hook and the output written at the output hook; its error is taken at the output hook.
    /// </summary>
    public static HookSet AddSae(this HookSet hooks, HookedSae sae, bool withError = false, bool[]? positions = null)
    {
        var site = sae.Site;
        if (!site.IsCrossHook)
            return hooks.Edit(site.OutputHook, view =>
            {
                var x = site.GatherInput(view);
                var output = withError ? sae.Sae.ForwardWithError(x).Output : sae.Sae.Forward(x).Output;
                site.ScatterOutput(view, output, positions);
            });
        Tensor? captured = null;
        hooks.Edit(site.InputHook, view => captured = site.GatherInput(view));
        return hooks.Edit(site.OutputHook, view =>
        {
            var x = captured ?? throw new InvalidOperationException($"{sae.Name}: output hook '{site.OutputHook}' ran before input hook '{site.InputHook}'");
            captured = null;
            var output = sae.Sae.Forward(x).Output;
            if (withError)
            {
                var actual = site.GatherOutput(view);
                var error = actual.Clone();
                TensorPrimitives.Subtract(error.Span, output.Span, error.Span);
                TensorPrimitives.Add(output.Span, error.Span, output.Span);
            }
            site.ScatterOutput(view, output, positions);
        });
    }

    /// <summary>Writes precomputed <paramref name="rows"/> <c>[positions, d_out]</c> (e.g. an SAE's output on a clean run's activations) at the output hook.</summary>
    public static HookSet AddReplacement(this HookSet hooks, SaeSite site, Tensor rows, bool[]? positions = null) =>
        hooks.Edit(site.OutputHook, view => site.ScatterOutput(view, rows, positions));

    /// <summary>Zero ablation: the SAE's part of the output hook set to zero.</summary>
    public static HookSet AddZeroAblation(this HookSet hooks, SaeSite site, bool[]? positions = null)
    {
        var zeros = new float[site.OutputWidth];
        return hooks.Edit(site.OutputHook, view => site.FillOutput(view, zeros, positions));
    }

    /// <summary>Mean ablation: the SAE's part of the output hook set to <paramref name="mean"/> (d_out floats, e.g. from <see cref="ActivationMean"/>).</summary>
    public static HookSet AddMeanAblation(this HookSet hooks, SaeSite site, float[] mean, bool[]? positions = null)
    {
        if (mean.Length != site.OutputWidth) throw new ArgumentException($"mean for '{site.OutputHook}' has {mean.Length} entries, expected {site.OutputWidth}");
        return hooks.Edit(site.OutputHook, view => site.FillOutput(view, mean, positions));
    }
}

/// <summary>The mean of rows (selected by a mask), accumulated in float64 over any number of batches.</summary>
public sealed class ActivationMean(int width)
{
    private readonly double[] _sum = new double[width];

    public long Count { get; private set; }

    /// <summary>Adds the rows of <paramref name="rows"/> that <paramref name="keep"/> selects (all when empty).</summary>
    public void Add(Tensor rows, ReadOnlySpan<bool> keep = default)
    {
        rows.EnsureShape("rows", rows.Rows, _sum.Length);
        for (int r = 0; r < rows.Rows; r++)
        {
            if (!keep.IsEmpty && !keep[r]) continue;
            var x = rows.Row(r);
            for (int j = 0; j < x.Length; j++) _sum[j] += x[j];
            Count++;
        }
    }

    /// <summary>The mean so far; throws when no row was added.</summary>
    public float[] Mean()
    {
        if (Count == 0) throw new InvalidOperationException("no rows were added to the mean");
        return _sum.Select(s => (float)(s / Count)).ToArray();
    }
}
