using SaeSharp.Tensors;

namespace SaeSharp.Training;

/// <summary>What one training step of an SAE produced.</summary>
/// <param name="Losses">Every loss term by name (SAELens names: "mse_loss", "l1_loss", "auxiliary_reconstruction_loss", ...), plus "overall_loss".</param>
/// <param name="Reconstruction">x̂ for the batch [B, d_out], for explained variance and resampling.</param>
/// <param name="FiringCounts">How many of the batch's rows each latent fired on (activation &gt; 0), for firing statistics and L0.</param>
public sealed record TrainStepResult(IReadOnlyDictionary<string, double> Losses, Tensor Reconstruction, int[] FiringCounts);

/// <summary>What an inference forward (no gradients, no training-state updates) produced.</summary>
/// <param name="Reconstruction">x̂ for the rows [B, d_out].</param>
/// <param name="Codes">The latent codes of the rows.</param>
public sealed record SaeEvaluation(Tensor Reconstruction, SparseCodes Codes);

/// <summary>Penalty coefficients and the dead-latent mask for one step.</summary>
public sealed record StepInputs(double SparsityCoefficient, bool[] DeadMask);

/// <summary>
/// The trainer's view of an SAE: named parameters, a fused forward + backward that fills gradients, and the
/// architecture-specific constraints around the optimiser step. Each architecture implements it next to its
/// forward and backward.
/// </summary>
public interface ITrainableSae
{
    int DIn { get; }
    int DSae { get; }
    /// <summary>Whether it predicts a separate target (a transcoder): its training rows then hold the input, then the target.</summary>
    bool Transcoder => false;
    /// <summary>Width of the reconstruction: the target's for a transcoder, else d_in.</summary>
    int DOut => DIn;
    /// <summary>The thread budget of the SAE's kernels; the trainer's own kernels use it too.</summary>
    Compute Compute { get; }
    /// <summary>Whether the sparsity coefficient (l1_coefficient) applies; top-k kinds have no penalty.</summary>
    bool SparsityPenalty { get; }
    IReadOnlyDictionary<string, Tensor> Parameters { get; }
    /// <summary>Forward and backward on <paramref name="input"/> (and <paramref name="target"/> for transcoders; else the input), writing into <paramref name="gradients"/>.</summary>
    TrainStepResult ForwardBackward(Tensor input, Tensor target, StepInputs inputs, IReadOnlyDictionary<string, Tensor> gradients);
    /// <summary>
    /// Inference forward on <paramref name="input"/>: no gradients and no change to any training state (batchtopk's
    /// threshold EMA is left alone), for resampling dead latents and validation losses.
    /// </summary>
    SaeEvaluation Evaluate(Tensor input);
    /// <summary>Called between backward and the optimiser step (e.g. removing the gradient component parallel to unit-norm decoder rows).</summary>
    void BeforeOptimizerStep(IReadOnlyDictionary<string, Tensor> gradients);
    /// <summary>Called after the optimiser step (e.g. renormalising decoder rows).</summary>
    void AfterOptimizerStep();
    /// <summary>Non-parameter training state that a checkpoint must carry (e.g. batchtopk's threshold EMA).</summary>
    IReadOnlyDictionary<string, double> ScalarState { get; }
    void RestoreScalarState(IReadOnlyDictionary<string, double> state);
}
