using System.Numerics.Tensors;
using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Saes;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Analysis;

/// <summary>What a steering run does to the SAE's latents.</summary>
public enum SteeringMode
{
    /// <summary>
    /// Adds strength × each feature's decoder direction (the row of W_dec) at the SAE's output hook: drrik's
    /// SAESteering, Neuronpedia's SIMPLE_ADDITIVE. The SAE itself does not run.
    /// </summary>
    Add,
    /// <summary>
    /// Encodes the activation with the SAE, sets the chosen latents to their values and adds the decoded difference,
    /// so whatever the SAE does not reconstruct (its error term) is kept, as SAELens's HookedSAETransformer does with
    /// use_error_term.
    /// </summary>
    Clamp,
    /// <summary>Clamp to 0: the chosen latents' contribution is removed.</summary>
    Ablate,
}

/// <summary>Which positions of a sequence a steering run changes.</summary>
public enum SteeringPositions
{
    All,
    /// <summary>The prompt's positions only (the last of them predicts the first new token).</summary>
    Prompt,
    /// <summary>The generated tokens' positions only: the first new token is still predicted unsteered.</summary>
    Generated,
}

/// <summary>
/// One latent of a steering run: in <see cref="SteeringMode.Add"/> the multiple of its decoder direction, in
/// <see cref="SteeringMode.Clamp"/> the value it is set to; <see cref="SteeringMode.Ablate"/> does not read it.
/// </summary>
public readonly record struct SteeringFeature(int Index, double Strength = 1);

/// <summary>
/// A steering intervention on one SAE's latents. <see cref="Strength"/> scales the whole intervention: the added
/// direction in add mode, the decoded difference in clamp and ablate mode, so 0 is always the unsteered model and 1
/// the features as given (compare_steering's strengths, Neuronpedia's strength_multiplier).
/// </summary>
public sealed record SteeringIntervention
{
    public required IReadOnlyList<SteeringFeature> Features { get; init; }
    public SteeringMode Mode { get; init; } = SteeringMode.Add;
    public SteeringPositions Positions { get; init; } = SteeringPositions.All;
    /// <summary>Add mode: unit-length decoder directions (get_steering_direction's normalize), so a strength is a distance.</summary>
    public bool Normalize { get; init; }
    public double Strength { get; init; } = 1;

    /// <summary>Whether position <paramref name="position"/> of a sequence whose prompt has <paramref name="promptLength"/> tokens is steered.</summary>
    public bool Steers(int position, int promptLength) => Positions switch
    {
        SteeringPositions.All => true,
        SteeringPositions.Prompt => position < promptLength,
        SteeringPositions.Generated => position >= promptLength,
        _ => throw new ArgumentOutOfRangeException(nameof(Positions), Positions, "unknown steering positions"),
    };

    /// <summary>Checks the intervention against <paramref name="sae"/>: features in range, finite strengths, options that fit the mode.</summary>
    public void Validate(Sae sae)
    {
        if (Features.Count == 0) throw new ArgumentException("no features to steer with (a baseline is strength 0, or no intervention at all)");
        if (!double.IsFinite(Strength)) throw new ArgumentException($"strength must be finite, got {Strength}");
        int dSae = sae.Config.DSae;
        foreach (var f in Features)
        {
            if (f.Index < 0 || f.Index >= dSae) throw new ArgumentOutOfRangeException(nameof(Features), $"feature_idx {f.Index} out of range [0, {dSae})");
            if (!double.IsFinite(f.Strength)) throw new ArgumentException($"feature {f.Index}: strength must be finite, got {f.Strength}");
        }
        if (Mode != SteeringMode.Add)
        {
            if (Normalize) throw new ArgumentException($"normalize applies to add mode only; {Mode.ToString().ToLowerInvariant()} sets latent values through the SAE's own decoder");
            var twice = Features.GroupBy(f => f.Index).FirstOrDefault(g => g.Count() > 1);
            if (twice is not null) throw new ArgumentException($"feature {twice.Key} is given twice; {Mode.ToString().ToLowerInvariant()} sets each latent once");
        }
    }
}

/// <summary>
/// Steering as hooks at an SAE's <see cref="SaeSite"/>: the intervention is written where the SAE's decoder writes (its
/// output hook; for a transcoder the clamp reads the input hook), one head's slice with a head index. The hooks run in
/// every forward of the model, the KV-cached incremental ones included, so generation is steered the same way
/// whatever the model family.
/// </summary>
public static class SteeringHooks
{
    /// <summary>
    /// Adds <paramref name="intervention"/> to <paramref name="hooks"/> for one sequence whose prompt has
    /// <paramref name="promptLength"/> tokens. The hooks count positions from 0 across the forwards they see (a full
    /// pass, or a prompt then one token at a time with a KV cache), so a HookSet serves one sequence: make a fresh
    /// one for each run, and do not use it in batched runs.
    /// </summary>
    public static HookSet AddSteering(this HookSet hooks, HookedSae sae, SteeringIntervention intervention, int promptLength) =>
        hooks.AddSteering(sae, intervention, p => intervention.Steers(p, promptLength));

    /// <summary><see cref="AddSteering(HookSet, HookedSae, SteeringIntervention, int)"/> with any choice of positions.</summary>
    public static HookSet AddSteering(this HookSet hooks, HookedSae sae, SteeringIntervention intervention, Func<int, bool> steered)
    {
        intervention.Validate(sae.Sae);
        var site = sae.Site;
        int next = 0;
        bool[] Mask(int rows)
        {
            var mask = new bool[rows];
            for (int r = 0; r < rows; r++) mask[r] = steered(next + r);
            next += rows;
            return mask;
        }

        if (intervention.Mode == SteeringMode.Add)
        {
            var direction = Direction(sae.Sae, intervention.Features, intervention.Normalize, intervention.Strength);
            return hooks.Edit(site.OutputHook, view =>
            {
                var mask = Mask(site.OutputRows(view));
                if (!mask.Contains(true)) return;
                var rows = site.GatherOutput(view);
                for (int r = 0; r < rows.Rows; r++)
                    if (mask[r]) TensorPrimitives.Add(rows.Row(r), direction, rows.Row(r));
                site.ScatterOutput(view, rows, mask);
            });
        }

        Tensor? captured = null;
        if (site.IsCrossHook) hooks.Edit(site.InputHook, view => captured = site.GatherInput(view));
        return hooks.Edit(site.OutputHook, view =>
        {
            var input = site.IsCrossHook
                ? captured ?? throw new InvalidOperationException($"{sae.Name}: output hook '{site.OutputHook}' ran before input hook '{site.InputHook}'")
                : site.GatherInput(view);
            captured = null;
            var mask = Mask(site.OutputRows(view));
            if (!mask.Contains(true)) return;
            var rows = site.GatherOutput(view);
            AddClampDifference(sae.Sae, intervention, input, rows, mask);
            site.ScatterOutput(view, rows, mask);
        });
    }

    /// <summary>
    /// Σ strength · s_i · d_i over the features, d_i the decoder row of latent i (unit length when
    /// <paramref name="normalize"/>; a zero row stays zero), summed in float64.
    /// </summary>
    public static float[] Direction(Sae sae, IReadOnlyList<SteeringFeature> features, bool normalize, double strength = 1)
    {
        int d = sae.DOut;
        var sum = new double[d];
        foreach (var f in features)
        {
            var row = sae.WDec.Row(f.Index);
            double scale = strength * f.Strength;
            if (normalize)
            {
                double norm = Math.Sqrt(TensorPrimitives.Dot(row, row));
                if (norm > 0) scale /= norm;
            }
            for (int j = 0; j < d; j++) sum[j] += scale * row[j];
        }
        return Array.ConvertAll(sum, v => (float)v);
    }

    /// <summary>
    /// What one unit of latent <paramref name="latent"/>'s code adds to the SAE's output before any de-normalisation:
    /// its decoder row, divided by the row's norm for top-k SAEs that rank by rescaled codes (their code is the
    /// decoded coefficient times that norm).
    /// </summary>
    public static float UnitScale(Sae sae, int latent)
    {
        if (!(sae.Config.Kind.TopK && sae.Config.RescaleActsByDecoderNorm)) return 1;
        var row = sae.WDec.Row(latent);
        float norm = MathF.Sqrt(TensorPrimitives.Dot(row, row));
        return norm > 0 ? 1 / norm : 0;
    }

    /// <summary>
    /// rows += strength · outScale · Σ_i (target_i − f_i) · unit_i · d_i at the masked rows, f the SAE's codes of
    /// <paramref name="input"/> and outScale its activation normalisation's output scale (1 without one): the SAE's
    /// output with the edited latents minus its output with its own, the error term untouched.
    /// </summary>
    private static void AddClampDifference(Sae sae, SteeringIntervention iv, Tensor input, Tensor rows, bool[] mask)
    {
        var forward = sae.Forward(input);
        var features = iv.Features;
        var units = features.Select(f => UnitScale(sae, f.Index)).ToArray();
        for (int r = 0; r < rows.Rows; r++)
        {
            if (!mask[r]) continue;
            double outScale = forward.Norm?.OutScale[r] ?? 1;
            var row = rows.Row(r);
            for (int i = 0; i < features.Count; i++)
            {
                double target = iv.Mode == SteeringMode.Ablate ? 0 : features[i].Strength;
                double change = iv.Strength * (target - LatentValue(forward, r, features[i].Index)) * outScale * units[i];
                TensorPrimitives.MultiplyAdd(sae.WDec.Row(features[i].Index), (float)change, row, row);
            }
        }
    }

    /// <summary>The code of <paramref name="latent"/> in row <paramref name="row"/> of a forward (dense or sparse).</summary>
    public static float LatentValue(SaeForward forward, int row, int latent)
    {
        if (forward.Features is { } dense) return dense[row, latent];
        var codes = forward.Codes ?? throw new InvalidOperationException("the SAE forward holds no latent codes");
        for (int e = codes.RowStart[row]; e < codes.RowStart[row + 1]; e++)
            if (codes.Index[e] == latent) return codes.Value[e];
        return 0;
    }
}
