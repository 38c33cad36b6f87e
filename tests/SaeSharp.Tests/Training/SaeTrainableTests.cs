using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Training;
using static SaeSharp.Tests.Saes.GradientCheck;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Training;

public class SaeTrainableTests
{
    private static Dictionary<string, Tensor> Grads(Sae sae) => sae.Params.ToDictionary(kv => kv.Key, kv => new Tensor(kv.Value.Shape.ToArray()));

    [Theory]
    [InlineData("transcoder")]
    [InlineData("skip_transcoder")]
    public void TranscodersTrainAgainstTheSeparateTarget(string arch)
    {
        var cfg = new SaeConfig { Architecture = arch, DIn = 6, DSae = 12, DOut = 4, ApplyBDecToInput = false };
        var sae = SaeRegistry.Create(cfg, Compute.All);
        SaeTrainable.Initialize(sae, new Rng(1), bDec: [0.1f, 0.2f, 0.3f, 0.4f]);
        Assert.Equal([6, 12], sae.WEnc.Shape.ToArray());
        if (arch == "skip_transcoder") Assert.All(sae.Params["W_skip"].ToArray(), v => Assert.Equal(0f, v));
        new Rng(2).FillNormal(sae.Params["b_enc"].Span, 0, 0.1f);
        var trainable = new SaeTrainable(sae, new SaeLossOptions { L1Coefficient = 0.5 });
        var x = RandomX(8, 6, 3);
        var target = RandomX(8, 4, 4);
        var grads = Grads(sae);
        var step = trainable.ForwardBackward(x, target, new StepInputs(0.25, new bool[12]), grads);

        // The same as the SAE's own forward against that target, with the step's coefficient.
        var opt = new SaeLossOptions { L1Coefficient = 0.25, L0Coefficient = 0.25, DeadMask = new bool[12] };
        var f = sae.Forward(x, target, opt);
        Assert.Equal(f.Losses["mse_loss"], step.Losses["mse_loss"]);
        Assert.Equal(f.Losses["l1_loss"], step.Losses["l1_loss"]);
        var expected = sae.Params.ZerosLike();
        sae.Backward(f, expected);
        foreach (var (name, g) in expected) Assert.Equal(g.ToArray(), grads[name].ToArray());
        Assert.Equal([8, 4], step.Reconstruction.Shape.ToArray());

        // The trainer's input-as-target call is refused with a clear message rather than mis-shaped.
        var e = Assert.Throws<ArgumentException>(() => trainable.ForwardBackward(x, x, new StepInputs(0.25, new bool[12]), grads));
        Assert.Contains("target", e.Message);
    }

    [Fact]
    public void MatryoshkaStepCountsTheInnerLosses()
    {
        var cfg = new SaeConfig { Architecture = "matryoshka_batchtopk", DIn = 6, DSae = 12, K = 3, MatryoshkaWidths = [4, 8, 12] };
        var sae = SaeRegistry.Create(cfg, Compute.All);
        SaeTrainable.Initialize(sae, new Rng(5));
        var trainable = new SaeTrainable(sae);
        var x = RandomX(8, 6, 6);
        var step = trainable.ForwardBackward(x, x, new StepInputs(0, new bool[12]), Grads(sae));
        Assert.True(step.Losses.ContainsKey("inner_mse_loss_4") && step.Losses.ContainsKey("inner_mse_loss_8"));
        Assert.Equal(step.Losses["mse_loss"] + step.Losses["inner_mse_loss_4"] + step.Losses["inner_mse_loss_8"], step.Losses["overall_loss"], 12);
    }
}
