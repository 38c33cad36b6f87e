using System.Text.Json.Nodes;
using SaeSharp.Saes;

namespace SaeSharp.Runs;

/// <summary>
/// The training-config keys SAELens 6.x writes into a trained SAE's cfg.json (its <c>TrainingSAEConfig</c> fields, per
/// architecture as <see cref="SaeArchitecture.TrainingKeys"/> lists them), from the settings a run used, so a SaeSharp
/// cfg.json says how it was trained in SAELens's terms.
/// </summary>
public static class SaeLensTrainingKeys
{
    public static JsonObject From(TrainSettings s)
    {
        var settings = IO.ConfigBinder.ToJson(s);
        var o = new JsonObject();
        var pairs = SaeRegistry.Get(s.Architecture).TrainingKeyPairs.Prepend((SaeArchitecture.CommonTrainingKey, SaeArchitecture.CommonTrainingKey));
        foreach (var (cfgKey, setting) in pairs)
        {
            if (!settings.TryGetPropertyValue(setting, out var value))
                throw new InvalidOperationException($"architecture '{s.Architecture}' writes '{cfgKey}' from training setting '{setting}', which does not exist");
            o[cfgKey] = value?.DeepClone();
        }
        return o;
    }
}
