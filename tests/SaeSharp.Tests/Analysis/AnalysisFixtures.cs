using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Analysis;

/// <summary>
/// Planted features: the random GPT-2's embeddings rewritten so that at <c>blocks.0.hook_resid_pre</c> (token plus
/// position embedding) dimension j holds A when the token is <see cref="Planted"/>[j], plus a position-dependent
/// c_p in (0.5, 9.5) in every planted dimension. A standard SAE with W_enc = I on those dimensions and b_enc = −A then
/// fires latent j exactly on token t_j, with activation c_p, so every statistic can be computed directly.
/// Latents <see cref="Planted"/>.Length.. never fire.
/// </summary>
public sealed class PlantedFeatures
{
    public const float A = 10;
    public const string Hook = "blocks.0.hook_resid_pre";
    public static readonly int[] Planted = [5, 17, 33, 100, 200, 301];
    public const int DSae = 8;

    public HookedTransformer Model { get; }
    public HookedSae Sae { get; }
    public float[] PositionValue { get; }
    public int[][] Sequences { get; }

    public PlantedFeatures(int sequences = 12, int length = 64, ulong seed = 3)
    {
        Model = LoadGpt2();
        var w = Model.Weights;
        int d = Model.Config.DModel;
        w.Embed.Span.Clear();
        for (int j = 0; j < Planted.Length; j++) w.Embed[Planted[j], j] = A;
        var rng = new Rng(seed);
        PositionValue = new float[length];
        w.PosEmbed!.Span.Clear();
        for (int p = 0; p < length; p++)
        {
            PositionValue[p] = (float)rng.Uniform(0.5, 9.5);
            for (int j = 0; j < Planted.Length; j++) w.PosEmbed[p, j] = PositionValue[p];
        }
        var sae = SaeRegistry.Create(new SaeConfig
        {
            Architecture = "standard", DIn = d, DSae = DSae, ApplyBDecToInput = false,
            Metadata = new JsonObject { ["hook_name"] = Hook },
        }, Compute.All);
        for (int j = 0; j < DSae; j++)
        {
            if (j < Planted.Length) sae.WEnc[j, j] = 1;
            sae.Params["b_enc"][j] = -A;
        }
        new Rng(9).FillNormal(sae.WDec.Span, 0, 1);
        Sae = Hooked(Model, sae, "planted");
        // Tokens: BOS (0) first, then draws from the planted tokens and a few others, so each planted token recurs.
        int[] alphabet = [.. Planted, 7, 8, 9, 40, 41, 42, 43, 44];
        Sequences = Enumerable.Range(0, sequences).Select(_ =>
        {
            var s = new int[length];
            for (int p = 1; p < length; p++) s[p] = alphabet[rng.NextInt(alphabet.Length)];
            return s;
        }).ToArray();
    }

    /// <summary>The activation latent j has at position p of a sequence: the SAE's own float arithmetic on A + c_p.</summary>
    public float Value(int p) => (A + PositionValue[p]) - A;

    /// <summary>Every firing of latent j: (sequence, position, activation), in stream order.</summary>
    public List<(int Seq, int Pos, float Value)> Firings(int j)
    {
        var list = new List<(int, int, float)>();
        for (int s = 0; s < Sequences.Length; s++)
            for (int p = 0; p < Sequences[s].Length; p++)
                if (j < Planted.Length && Sequences[s][p] == Planted[j]) list.Add((s, p, Value(p)));
        return list;
    }

    public int KeptPositions => Sequences.Sum(s => s.Count(t => t != 0));

    public FeatureAnalysis Analyze(FeatureAnalysisOptions options, int batchSize, Compute compute) =>
        new FeatureAnalyzer(options, compute).Analyze(Model, Sae, Sequences, batchSize, [0], tokenizer: null);
}
