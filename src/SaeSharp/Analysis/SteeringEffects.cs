using System.Numerics.Tensors;
using SaeSharp.Evals;
using SaeSharp.Models;

namespace SaeSharp.Analysis;

/// <summary>
/// One of the tokens a steering direction promotes most (<see cref="SteeringEffects.TopOutputTokens"/>): its logit-lens
/// score (direction · unembedding row) and the change of its logit, steered minus unsteered, at each generated position.
/// </summary>
public sealed record TokenLogitChange(int Token, double DirectionLogit, double[] Change)
{
    public double MeanChange => Change.Length == 0 ? 0 : Change.Average();
}

/// <summary>
/// What a steered run did to the model's predictions, measured on the run's own tokens: the steered and the unsteered
/// model read the same sequence (prompt + generated), and for each generated token the distribution that predicted it
/// (at the position before it) is compared. <see cref="Kl"/>[j] is KL(steered ‖ unsteered) for generated token j, in
/// nats; each <see cref="TopTokens"/> entry holds one promoted token's logit change at the same positions.
/// </summary>
public sealed record SteeringEffects(double[] Kl, IReadOnlyList<TokenLogitChange> TopTokens)
{
    public double MeanKl => Kl.Length == 0 ? 0 : Kl.Average();
    public double MaxKl => Kl.Length == 0 ? 0 : Kl.Max();

    /// <summary>
    /// Measures <paramref name="intervention"/> on <paramref name="tokens"/> (the prompt's first
    /// <paramref name="promptLength"/> tokens, then the generated ones), reporting the logits of
    /// <paramref name="topTokens"/>.
    /// </summary>
    public static SteeringEffects Measure(HookedTransformer model, HookedSae sae, SteeringIntervention intervention, int[] tokens, int promptLength,
        IReadOnlyList<(int Token, double DirectionLogit)> topTokens)
    {
        if (promptLength < 1 || promptLength > tokens.Length) throw new ArgumentException($"prompt length {promptLength} outside [1, {tokens.Length}]");
        int generated = tokens.Length - promptLength;
        var changes = topTokens.Select(_ => new double[generated]).ToArray();
        var kl = new double[generated];
        if (generated > 0)
        {
            // The positions before each generated token predict it; the last token predicts nothing and is not run.
            var input = tokens[..^1];
            var steered = model.Forward(input, new HookSet().AddSteering(sae, intervention, promptLength));
            var unsteered = model.Forward(input);
            var buf = new float[2 * model.Config.VocabSize];
            for (int j = 0; j < generated; j++)
            {
                int row = promptLength - 1 + j;
                var s = steered.Row(row);
                var u = unsteered.Row(row);
                kl[j] = Math.Max(0, LogitComparison.Kl(s, LogitComparison.LogSumExp(s, buf), u, LogitComparison.LogSumExp(u, buf), buf));
                for (int t = 0; t < topTokens.Count; t++) changes[t][j] = (double)s[topTokens[t].Token] - u[topTokens[t].Token];
            }
        }
        return new SteeringEffects(kl, topTokens.Select((t, i) => new TokenLogitChange(t.Token, t.DirectionLogit, changes[i])).ToArray());
    }

    /// <summary>
    /// The <paramref name="count"/> tokens whose unembedding rows have the largest dot product with
    /// <paramref name="direction"/> (its logit lens, as SAEDashboard ranks a feature's top logits; ties to the lower
    /// id), with those products. None when the direction is not d_model wide (a hook inside attention or the MLP).
    /// </summary>
    public static (int Token, double DirectionLogit)[] TopOutputTokens(HookedTransformer model, ReadOnlySpan<float> direction, int count)
    {
        var unembed = model.Weights.Unembed;
        if (count <= 0 || direction.Length != unembed.Cols) return [];
        var scores = new double[unembed.Rows];
        for (int v = 0; v < scores.Length; v++) scores[v] = TensorPrimitives.Dot(unembed.Row(v), direction);
        return Enumerable.Range(0, scores.Length).OrderByDescending(v => scores[v]).ThenBy(v => v).Take(count)
            .Select(v => (v, scores[v])).ToArray();
    }
}
