using System.Numerics.Tensors;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Training;

/// <summary>
/// Trains any registered <see cref="Sae"/> architecture: forwards with the step's penalty coefficient and dead
/// mask, runs its hand-written backward, and applies the decoder constraints around the optimiser step.
/// </summary>
public sealed class SaeTrainable : ITrainableSae
{
    private readonly SaeLossOptions _baseLoss;
    private readonly Dictionary<string, Tensor> _parameters;
    private SaeParams? _gradParams;
    private IReadOnlyDictionary<string, Tensor>? _gradSource;

    public Sae Sae { get; }
    /// <summary>Anthropic/drrik constraint: unit-norm decoder rows, gradient component along each row removed.</summary>
    public bool UnitNormDecoder { get; }

    public SaeTrainable(Sae sae, SaeLossOptions? loss = null, bool unitNormDecoder = false)
    {
        Sae = sae;
        _baseLoss = loss ?? new SaeLossOptions();
        UnitNormDecoder = unitNormDecoder;
        _parameters = sae.Params.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
    }

    public Compute Compute => Sae.Compute;
    public bool SparsityPenalty => Sae.Config.Kind.SparsityPenalty;
    public int DIn => Sae.Config.DIn;
    public int DSae => Sae.Config.DSae;
    public bool Transcoder => Sae.Config.IsTranscoder;
    public int DOut => Sae.DOut;
    public IReadOnlyDictionary<string, Tensor> Parameters => _parameters;

    public TrainStepResult ForwardBackward(Tensor input, Tensor target, StepInputs inputs, IReadOnlyDictionary<string, Tensor> gradients)
    {
        var grads = GradParams(gradients);
        grads.Clear(compute: Compute);
        var options = _baseLoss with
        {
            L1Coefficient = inputs.SparsityCoefficient,
            L0Coefficient = inputs.SparsityCoefficient,
            DeadMask = inputs.DeadMask,
        };
        var f = Sae.Forward(input, ReferenceEquals(input, target) ? null : target, options);
        Sae.Backward(f, grads);
        var losses = new Dictionary<string, double>(f.Losses) { ["overall_loss"] = f.TotalLoss };
        return new TrainStepResult(losses, f.Output, f.FiringCounts(Compute));
    }

    public SaeEvaluation Evaluate(Tensor input)
    {
        var f = Sae.Forward(input);
        return new SaeEvaluation(f.Output, f.Codes ?? ToCodes(f.Features!, compute: Compute));
    }

    private SaeParams GradParams(IReadOnlyDictionary<string, Tensor> gradients)
    {
        if (_gradParams is not null && ReferenceEquals(_gradSource, gradients)) return _gradParams;
        var p = new SaeParams();
        foreach (var name in Sae.Params.Names) p.Add(name, gradients[name]);
        _gradParams = p;
        _gradSource = gradients;
        return p;
    }

    /// <summary>The non-zero entries of dense latent activations, for firing statistics.</summary>
    public static SparseCodes ToCodes(Tensor features, Compute compute) => SparseCodes.FromDense(features, compute);

    public void BeforeOptimizerStep(IReadOnlyDictionary<string, Tensor> gradients)
    {
        if (UnitNormDecoder) Sae.RemoveGradientParallelToDecoder(GradParams(gradients));
    }

    public void AfterOptimizerStep()
    {
        if (UnitNormDecoder) Sae.NormalizeDecoderRows();
    }

    public IReadOnlyDictionary<string, double> ScalarState =>
        Sae is TopKSae t ? new Dictionary<string, double> { ["topk_threshold"] = t.TopKThreshold } : new Dictionary<string, double>();

    public void RestoreScalarState(IReadOnlyDictionary<string, double> state)
    {
        if (Sae is TopKSae t && state.TryGetValue("topk_threshold", out var v)) t.TopKThreshold = v;
    }

    /// <summary>
    /// SAELens-style initialisation: decoder rows in random directions with norm <paramref name="decoderInitNorm"/>,
    /// W_enc = W_decᵀ (transcoders with d_out ≠ d_in: independent random columns of that norm), b_enc = 0, W_skip = 0,
    /// and b_dec as given (zeros when null).
    /// </summary>
    public static void Initialize(Sae sae, Rng rng, double decoderInitNorm = 0.1, float[]? bDec = null)
    {
        if (!(decoderInitNorm > 0)) throw new ArgumentException($"decoder_init_norm must be positive, got {decoderInitNorm}");
        var wDec = sae.WDec;
        rng.FillNormal(wDec.Span);
        for (int j = 0; j < wDec.Rows; j++)
        {
            var row = wDec.Row(j);
            float n = TensorPrimitives.Norm(row);
            TensorPrimitives.Multiply(row, (float)(decoderInitNorm / Math.Max(n, 1e-12f)), row);
        }
        if (sae.Config.DIn == sae.DOut) Ops.TransposeInto(wDec, sae.WEnc, accumulate: false, compute: sae.Compute);
        else
        {
            // A transcoder whose output width differs: W_enc gets its own random columns of the same norm.
            var wEncT = new Tensor(sae.Config.DSae, sae.Config.DIn);
            rng.FillNormal(wEncT.Span);
            for (int j = 0; j < wEncT.Rows; j++)
            {
                var row = wEncT.Row(j);
                TensorPrimitives.Multiply(row, (float)(decoderInitNorm / Math.Max(TensorPrimitives.Norm(row), 1e-12f)), row);
            }
            Ops.TransposeInto(wEncT, sae.WEnc, accumulate: false, compute: sae.Compute);
        }
        if (sae.Params.Contains("W_skip")) sae.Params["W_skip"].Span.Clear(); // SAELens starts the skip connection at zero
        if (sae.Params.Contains("b_enc")) sae.Params["b_enc"].Span.Clear();
        if (bDec is not null)
        {
            if (bDec.Length != sae.BDec.Length) throw new ArgumentException($"b_dec init has {bDec.Length} values, the SAE's output width (d_in, or d_out for transcoders) is {sae.BDec.Length}");
            bDec.CopyTo(sae.BDec.Span);
        }
        else sae.BDec.Span.Clear();
    }
}
