using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.IO;
using SaeSharp.Runs;

namespace SaeSharp.Server;

/// <summary>
/// The live pages' work, run on the <see cref="LiveWork"/> queue: a text search is `saesharp features`'s search
/// (<see cref="PromptFeaturesRun.Search"/>), a steering comparison is `saesharp steer`'s
/// (<see cref="SteerRun.Compare"/>), both over the store's model and SAE; each result is the JSON its page shows.
/// </summary>
public static class LiveJobs
{
    public static JsonNode Search(ServedStore store, SearchRequest request, JobContext job)
    {
        var live = store.Live ?? throw new InvalidOperationException($"store {store.Id} has no live model");
        job.Cancel.ThrowIfCancellationRequested();
        return live.Use(() => job.Report(0.05, "loading the model and SAE"), (model, sae, strings) =>
        {
            job.Cancel.ThrowIfCancellationRequested();
            job.Report(0.3, "running the model and SAE over the text");
            var steering = new SaeSteering(model, sae, live.Tokenizer);
            var r = PromptFeaturesRun.Search(steering, request.Text, request.Settings);
            var tokens = new JsonArray();
            for (int p = 0; p < r.Tokens.Length; p++)
                tokens.Add(new JsonObject { ["id"] = r.Tokens[p], ["text"] = TokenString(strings, r.Tokens[p]), ["special"] = r.Special[p] });
            var features = new JsonArray();
            for (int i = 0; i < r.Features.Count; i++)
            {
                var f = r.Features[i];
                int j = f.Activation.FeatureIdx;
                features.Add(new JsonObject
                {
                    ["feature"] = j,
                    ["activation"] = Number(f.Activation.Activation),
                    ["normalized_activation"] = Number(f.Activation.NormalizedActivation),
                    ["decoder_weight_norm"] = Number(f.Activation.DecoderWeightNorm),
                    ["top_tokens"] = TokenList(strings, f.TopTokens),
                    ["token_activations"] = new JsonArray([.. r.TokenActivations[i].Select(a => Number(a))]),
                    ["url"] = $"/stores/{store.Id}/features/{j}",
                });
            }
            return new JsonObject
            {
                ["store"] = store.Id,
                ["text"] = request.Text,
                ["tokens"] = tokens,
                ["counted_positions"] = r.CountedPositions,
                ["settings"] = ConfigBinder.ToJson(request.Settings),
                ["features"] = features,
            };
        });
    }

    public static JsonNode Steer(ServedStore store, SteerRequest request, JobContext job)
    {
        var live = store.Live ?? throw new InvalidOperationException($"store {store.Id} has no live model");
        var s = request.Settings;
        int runs = s.ParseStrengths().Length;
        job.Cancel.ThrowIfCancellationRequested();
        return live.Use(() => job.Report(0.02, "loading the model and SAE"), (model, sae, strings) =>
        {
            var steering = SteerRun.Steering(model, sae, live.Tokenizer, s);
            int done = 0;
            job.Report(0.05, $"generating run 1 of {runs}");
            var c = SteerRun.Compare(steering, s, request.Prompt, run =>
            {
                done++;
                job.Report((double)done / runs, done < runs ? $"{run.Label} done; generating run {done + 1} of {runs}" : $"{run.Label} done");
            }, job.Cancel);
            var list = new JsonArray();
            foreach (var run in c.Runs)
            {
                var e = run.Effects;
                list.Add(new JsonObject
                {
                    ["label"] = run.Label,
                    ["strength"] = run.Strength,
                    ["text"] = run.Text,
                    ["continuation"] = steering.Decode(run.Generated),
                    ["generated_tokens"] = new JsonArray([.. run.Generated.Select(t => (JsonNode)t)]),
                    ["mean_kl"] = e is null ? null : Number(e.MeanKl),
                    ["max_kl"] = e is null ? null : Number(e.MaxKl),
                    ["kl_per_generated_token"] = e is null ? null : new JsonArray([.. e.Kl.Select(k => Number(k))]),
                    ["top_token_logit_changes"] = e is null ? null : new JsonArray([.. e.TopTokens.Select(t => (JsonNode)new JsonObject
                    {
                        ["id"] = t.Token, ["text"] = TokenString(strings, t.Token), ["mean_change"] = Number(t.MeanChange),
                    })]),
                });
            }
            return new JsonObject
            {
                ["store"] = store.Id,
                ["prompt"] = request.Prompt,
                ["prompt_tokens"] = c.Prompt.Length,
                ["settings"] = ConfigBinder.ToJson(s),
                ["direction_tokens"] = TokenList(strings, c.DirectionTokens),
                ["runs"] = list,
            };
        });
    }

    private static string TokenString(string[] strings, int id) => id >= 0 && id < strings.Length ? strings[id] : $"<{id}>";

    private static JsonArray TokenList(string[] strings, IEnumerable<(int Token, double DirectionLogit)> tokens) =>
        new([.. tokens.Select(t => (JsonNode)new JsonObject { ["id"] = t.Token, ["text"] = TokenString(strings, t.Token), ["logit"] = Number(t.DirectionLogit) })]);

    private static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
}
