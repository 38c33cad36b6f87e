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
        var defaults = new TrainerSettings();
        var cfg = ConfigBinder.Bind(defaults, new[] { S("lr", "0.001"), S("steps", "1e4"), S("lr_scheduler", "cosineannealing"), S("batch-size", "512") });
        Assert.Equal(0.001, cfg.Lr);
        Assert.Equal(10_000, cfg.Steps);
        Assert.Equal(LrScheduler.Cosineannealing, cfg.LrScheduler);
        Assert.Equal(512, cfg.BatchSize);
        Assert.Equal(3e-4, defaults.Lr);
        Assert.Equal("adam_beta1", ConfigBinder.SnakeCase("AdamBeta1"));
    }

    [Fact]
    public void UnknownKeysAndBadValuesNameTheKeyAndSource()
    {
        var e = Assert.Throws<ArgumentException>(() => ConfigBinder.Bind(new TrainerSettings(), new[] { S("l1_coeficient", "5") }));
        Assert.Contains("test.yaml", e.Message);
        Assert.Contains("l1_coeficient", e.Message);
        Assert.Contains("l1_coefficient", e.Message); // the list of known keys helps spot the typo
        e = Assert.Throws<ArgumentException>(() => ConfigBinder.Bind(new TrainerSettings(), new[] { S("batch_size", "many") }));
        Assert.Contains("batch_size", e.Message);
        Assert.Contains("integer", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConfigBinder.Bind(new TrainerSettings(), new[] { S("lr_scheduler", "sideways") }));
        Assert.Contains("cosineannealing", e.Message);
    }

    [Fact]
    public void GroupedSettingsShareTheFlatKeySpaceAndRoundTripThroughJson()
    {
        var defaults = new SaeSharp.Runs.TrainSettings();
        var s = ConfigBinder.Bind(defaults, new[] { S("context_size", "64"), S("lr", "0.01"), S("prepend_bos", "false"), S("lr_scheduler", "cosineannealing") });
        Assert.Equal(64, s.Contexts.ContextSize);
        Assert.False(s.Contexts.PrependBos);
        Assert.Equal(128, defaults.Contexts.ContextSize); // the group was copied, not edited
        Assert.True(defaults.Contexts.PrependBos);
        var json = ConfigBinder.ToJson(s);
        Assert.Equal(64, (int)json["context_size"]!);
        Assert.Equal("cosineannealing", (string?)json["lr_scheduler"]);
        Assert.Null(json["steps"]); // unset nullable settings stay null
        var back = ConfigBinder.FromJson(new SaeSharp.Runs.TrainSettings(), json, "settings.json");
        Assert.Equal(json.ToJsonString(), ConfigBinder.ToJson(back).ToJsonString());
        Assert.Equal(s with { Contexts = back.Contexts }, back); // records compare by value; the group by reference
        Assert.Equal(s.Contexts, back.Contexts);
        var e = Assert.Throws<ArgumentException>(() => ConfigBinder.FromJson(new SaeSharp.Runs.TrainSettings(), new System.Text.Json.Nodes.JsonObject { ["context_sise"] = 3 }, "settings.json"));
        Assert.Contains("settings.json key 'context_sise'", e.Message);
    }
}
