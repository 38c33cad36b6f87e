using SaeSharp.IO;
using SaeSharp.Training;
using Setting = SaeSharp.IO.ConfigBinder.Setting;

namespace SaeSharp.Tests.IO;

public class ConfigBinderTests
{
    private static KeyValuePair<string, Setting> S(string k, string v) => new(k, new Setting(v, "test.yaml"));

    [Fact]
    public void BindsSnakeCaseKeysAndKeepsDefaultsUntouched()
    {
        var defaults = new TrainerConfig();
        var cfg = ConfigBinder.Bind(defaults, new[] { S("lr", "0.001"), S("total_steps", "1e4"), S("lr_scheduler", "cosineannealing"), S("batch-size", "512") });
        Assert.Equal(0.001, cfg.Lr);
        Assert.Equal(10_000, cfg.TotalSteps);
        Assert.Equal(LrScheduler.Cosineannealing, cfg.LrScheduler);
        Assert.Equal(512, cfg.BatchSize);
        Assert.Equal(3e-4, defaults.Lr);
        Assert.Equal("adam_beta1", ConfigBinder.SnakeCase("AdamBeta1"));
    }

    [Fact]
    public void UnknownKeysAndBadValuesNameTheKeyAndSource()
    {
        var e = Assert.Throws<ArgumentException>(() => ConfigBinder.Bind(new TrainerConfig(), new[] { S("l1_coeficient", "5") }));
        Assert.Contains("test.yaml", e.Message);
        Assert.Contains("l1_coeficient", e.Message);
        Assert.Contains("sparsity_coefficient", e.Message); // the list of known keys helps spot the typo
        e = Assert.Throws<ArgumentException>(() => ConfigBinder.Bind(new TrainerConfig(), new[] { S("batch_size", "many") }));
        Assert.Contains("batch_size", e.Message);
        Assert.Contains("integer", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConfigBinder.Bind(new TrainerConfig(), new[] { S("lr_scheduler", "sideways") }));
        Assert.Contains("cosineannealing", e.Message);
    }
}
