using System.Text.Json;
using SaeSharp.IO;
using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Models;

/// <summary>Forward passes, hooks, generation and NLL against the float64 references in ../shared.</summary>
public class ReferenceModelTests
{
    internal const string StoriesHf = "models/stories260K/model.safetensors";
    internal const string StoriesBin = "models/stories260K/stories260K.bin";
    internal const string Prompts = "models/stories260K/reference/prompts.json";
    internal const string PromptLogits = "models/stories260K/reference/prompts_logits.safetensors";
    internal const string StoriesHooks = "models/stories260K/reference/hooks_once_upon.safetensors";
    internal const string Greedy = "models/stories260K/reference/greedy_once_upon_a_time.json";
    internal const string Gpt2 = "models/tiny-random-gpt2/reference.safetensors";
    internal const string Neox = "models/tiny-random-gptneox/reference.safetensors";

    private static readonly Dictionary<string, HookedTransformer> Models = new();

    /// <summary>"hf" (the folder), "bin" (llama2.c), "gpt2", "neox" — loaded once per test run.</summary>
    internal static HookedTransformer Model(string which)
    {
        lock (Models)
        {
            if (!Models.TryGetValue(which, out var m))
            {
                string path = which switch
                {
                    "hf" => SharedData.Path("models/stories260K"),
                    "bin" => SharedData.Path(StoriesBin),
                    "gpt2" => SharedData.Path("models/tiny-random-gpt2"),
                    "neox" => SharedData.Path("models/tiny-random-gptneox"),
                    _ => throw new ArgumentException(which),
                };
                Models[which] = m = HookedTransformer.Load(path, new Compute(2));
            }
            return m;
        }
    }

    internal static float MaxAbsDiff(Tensor a, Tensor b)
    {
        Assert.Equal(b.Shape.ToArray(), a.Shape.ToArray());
        float m = 0;
        var x = a.Span; var y = b.Span;
        for (int i = 0; i < x.Length; i++) m = Math.Max(m, Math.Abs(x[i] - y[i]));
        return m;
    }

    internal static void Close(Tensor expected, Tensor actual, float tol, string what)
    {
        float d = MaxAbsDiff(actual, expected);
        Assert.True(d <= tol, $"{what}: max |diff| {d:G3} > {tol:G3}");
    }

    internal static int[] Ids(long[] v) => v.Select(x => (int)x).ToArray();

    [SharedTheory(StoriesHf, StoriesBin, PromptLogits, Prompts)]
    [InlineData("hf")]
    [InlineData("bin")]
    public void StoriesLogitsMatchReference(string form)
    {
        var model = Model(form);
        using var reference = SafetensorsFile.Open(SharedData.Path(PromptLogits));
        using var prompts = JsonDocument.Parse(File.ReadAllBytes(SharedData.Path(Prompts)));
        for (int k = 0; k < 3; k++)
        {
            var tokens = Ids(reference.ReadInt64($"prompt{k}.tokens"));
            var logits = model.Forward(tokens);
            Close(reference.ReadFloat32($"prompt{k}.logits"), logits, 1e-4f, $"prompt {k} logits");
            // top-5 ids and logits, and log-sum-exp, per position from prompts.json
            var positions = prompts.RootElement.GetProperty("prompts")[k].GetProperty("positions");
            Assert.Equal(tokens.Length, positions.GetArrayLength());
            foreach (var pos in positions.EnumerateArray())
            {
                int t = pos.GetProperty("pos").GetInt32();
                var row = logits.Row(t).ToArray();
                var top = row.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(5).ToArray();
                var refTop = pos.GetProperty("top5").EnumerateArray().ToArray();
                for (int j = 0; j < 5; j++)
                {
                    Assert.Equal(refTop[j][0].GetInt32(), top[j].i);
                    Assert.Equal(refTop[j][1].GetDouble(), top[j].v, 1e-4);
                }
                double max = row.Max();
                double lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
                Assert.Equal(pos.GetProperty("logsumexp").GetDouble(), lse, 1e-4);
            }
        }
    }

    [SharedTheory(StoriesHf, StoriesBin, StoriesHooks)]
    [InlineData("hf")]
    [InlineData("bin")]
    public void StoriesHooksMatchReference(string form)
    {
        var model = Model(form);
        using var reference = SafetensorsFile.Open(SharedData.Path(StoriesHooks));
        var tokens = Ids(reference.ReadInt64("tokens"));
        var names = reference.Names.Where(n => n is not "tokens" and not "logits").ToList();
        Assert.Equal(1 + 5 * 12 + 2, names.Count);
        var output = model.RunWithCache(tokens, names);
        foreach (var name in names) Close(reference.ReadFloat32(name), output.Cache[name], 1e-4f, name);
        Close(reference.ReadFloat32("logits"), output.Logits!, 1e-4f, "logits");
    }

    [SharedTheory(StoriesHf, StoriesBin, Greedy)]
    [InlineData("hf")]
    [InlineData("bin")]
    public void StoriesGreedyContinuationMatchesReference(string form)
    {
        var model = Model(form);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(SharedData.Path(Greedy)));
        var prompt = doc.RootElement.GetProperty("prompt_tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var expected = doc.RootElement.GetProperty("new_tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var streamed = new List<int>();
        var generated = model.Generate(prompt, new GenerationOptions { MaxNewTokens = expected.Length }, null, streamed.Add);
        Assert.Equal(expected, generated);
        Assert.Equal(expected, streamed);
    }

    [SharedFact(StoriesHf, Prompts)]
    public void StoriesNextTokenNllMatchesReference()
    {
        // Per-position next-token NLLs recorded with the prompts' token ids (the TinyStories sample is in TinyStoriesNllTests).
        var model = Model("hf");
        using var prompts = JsonDocument.Parse(File.ReadAllBytes(SharedData.Path(Prompts)));
        foreach (var p in prompts.RootElement.GetProperty("prompts").EnumerateArray())
        {
            var tokens = p.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var expected = p.GetProperty("positions").EnumerateArray().Where(e => e.TryGetProperty("nll_next", out var v) && v.ValueKind == JsonValueKind.Number)
                .Select(e => e.GetProperty("nll_next").GetDouble()).ToArray();
            Assert.Equal(tokens.Length - 1, expected.Length);
            var logProbs = model.TokenLogProbs(tokens);
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], -logProbs[i], 1e-4);
            Assert.Equal(expected.Average(), model.MeanNll(tokens), 1e-4);
        }
    }

    [SharedTheory(Gpt2, Neox)]
    [InlineData("gpt2", Gpt2)]
    [InlineData("neox", Neox)]
    public void RandomModelsMatchReference(string which, string referencePath)
    {
        var model = Model(which);
        using var reference = SafetensorsFile.Open(SharedData.Path(referencePath));
        for (int k = 0; k < 2; k++)
        {
            string prefix = $"seq{k}.";
            var tokens = Ids(reference.ReadInt64(prefix + "input_ids"));
            var names = reference.Names.Where(n => n.StartsWith(prefix) && n != prefix + "input_ids" && n != prefix + "logits")
                .Select(n => n[prefix.Length..]).ToList();
            Assert.Contains("blocks.1.attn.hook_pattern", names);
            var output = model.RunWithCache(tokens, names);
            Close(reference.ReadFloat32(prefix + "logits"), output.Logits!, 2e-6f, $"{which} {prefix}logits");
            foreach (var name in names) Close(reference.ReadFloat32(prefix + name), output.Cache[name], 1e-5f, $"{which} {prefix}{name}");
        }
    }
}
