using System.Text.Json.Nodes;

namespace SaeSharp.Runs;

/// <summary>
/// The training-config keys SAELens 6.x writes into a trained SAE's cfg.json (its <c>TrainingSAEConfig</c> fields, per
/// architecture), from the settings a run used, so a SaeSharp cfg.json says how it was trained in SAELens's terms.
/// </summary>
public static class SaeLensTrainingKeys
{
    public static JsonObject From(TrainSettings s)
    {
        var loss = s.LossOptions();
        var o = new JsonObject { ["decoder_init_norm"] = s.DecoderInitNorm };
        switch (s.Architecture)
        {
            case "standard":
                o["l1_coefficient"] = s.L1Coefficient;
                o["lp_norm"] = s.LpNorm;
                o["l1_warm_up_steps"] = s.L1WarmUpSteps;
                break;
            case "gated":
                o["l1_coefficient"] = s.L1Coefficient;
                o["l1_warm_up_steps"] = s.L1WarmUpSteps;
                break;
            case "jumprelu":
                // SaeSharp's l1_coefficient setting is jumprelu's L0 coefficient.
                o["l0_coefficient"] = s.L1Coefficient;
                o["l0_warm_up_steps"] = s.L1WarmUpSteps;
                o["jumprelu_init_threshold"] = s.JumpreluInitThreshold;
                o["jumprelu_bandwidth"] = s.JumpreluBandwidth;
                o["jumprelu_sparsity_loss_mode"] = s.JumpreluSparsityLossMode;
                o["jumprelu_tanh_scale"] = loss.JumpReluTanhScale;
                o["pre_act_loss_coefficient"] = s.PreActLossCoefficient;
                break;
            case "topk" or "batchtopk" or "matryoshka_batchtopk":
                o["k"] = s.K;
                o["aux_loss_coefficient"] = s.AuxLossCoefficient;
                o["rescale_acts_by_decoder_norm"] = s.RescaleActsByDecoderNorm;
                if (s.Architecture != "topk") o["topk_threshold_lr"] = s.TopkThresholdLr;
                break;
        }
        return o;
    }
}
