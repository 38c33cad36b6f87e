namespace SaeSharp.Saes;

/// <summary>Training-time loss settings (SAELens names in comments). Coefficients multiply their loss term.</summary>
public sealed record SaeLossOptions
{
    /// <summary>l1_coefficient (standard, gated).</summary>
    public double L1Coefficient { get; init; } = 1;
    /// <summary>lp_norm of the weighted L1 penalty (standard).</summary>
    public double LpNorm { get; init; } = 1;
    /// <summary>l0_coefficient (jumprelu).</summary>
    public double L0Coefficient { get; init; } = 1;
    /// <summary>aux_loss_coefficient (topk/batchtopk AuxK).</summary>
    public double AuxKCoefficient { get; init; } = 1;
    /// <summary>Latents counted dead by the caller's tracker (length d_sae); drives AuxK and the pre-act loss.</summary>
    public bool[]? DeadMask { get; init; }
    /// <summary>AuxK k; 0 means d_in/2 as SAELens.</summary>
    public int AuxK { get; init; }
    /// <summary>jumprelu_sparsity_loss_mode: "step" or "tanh".</summary>
    public string JumpReluSparsityMode { get; init; } = "step";
    /// <summary>jumprelu_tanh_scale.</summary>
    public double JumpReluTanhScale { get; init; } = 4;
    /// <summary>pre_act_loss_coefficient; null disables the loss.</summary>
    public double? PreActLossCoefficient { get; init; }
    /// <summary>use_matryoshka_aux_loss (matryoshka_batchtopk): AuxK per matryoshka level against that level's own residual.</summary>
    public bool UseMatryoshkaAuxLoss { get; init; }
}
