using System.Numerics.Tensors;
using SaeSharp.Analysis;
using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using static SaeSharp.Tests.Evals.EvalFixtures;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Analysis;

/// <summary>
/// Steering hooks on real models: strength 0 is the baseline in every mode and position choice, clamping keeps the
/// error term, an added unembedding direction raises its token only where it is added, prompt-only steering leaves
/// the generated positions alone, KV-cached steered generation equals recomputed generation, and several features
/// add as their summed direction.
/// </summary>
public class SteeringHooksTests
{
    private const string Hook = "blocks.2.hook_resid_post";

    public static SaeSharp.Text.ITokenizer StoriesTok() => SaeSharp.Text.Tokenizers.Load(SharedData.Path(Stories));

    /// <summary>A steering object over stories260K with a seeded random SAE at <see cref="Hook"/>.</summary>
    public static SaeSteering Steering(HookedTransformer m, Sae sae, SteeringMode mode = SteeringMode.Add, SteeringPositions positions = SteeringPositions.All,
        bool kvCache = true) =>
        new(m, Hooked(m, sae), StoriesTok()) { Mode = mode, Positions = positions, UseKvCache = kvCache, Seed = 11 };

    private static GenerationOptions Sampled(int tokens = 20) => new() { MaxNewTokens = tokens, Sampling = new SamplingOptions { Temperature = 0.8f, TopP = 0.9f } };

    public static TheoryData<SteeringMode, SteeringPositions> EveryModeAndPosition()
    {
        var data = new TheoryData<SteeringMode, SteeringPositions>();
        foreach (var mode in Enum.GetValues<SteeringMode>())
            foreach (var positions in Enum.GetValues<SteeringPositions>()) data.Add(mode, positions);
        return data;
    }

    /// <summary>Features for a mode: the prompt's two most active latents, with values clamp can set (ablate ignores them).</summary>
    private static SteeringFeature[] ActiveFeatures(SaeSteering s, int[] prompt) =>
        s.FindSteeringFeatures("prompt", s.PromptActivations(prompt), topK: 2).Select(f => new SteeringFeature(f.FeatureIdx, 3 + 2 * f.Activation)).ToArray();

    [SharedTheory(StoriesWeights, StoriesTokenizer)]
    [MemberData(nameof(EveryModeAndPosition))]
    public void StrengthZeroIsTheBaselineTokenForToken(SteeringMode mode, SteeringPositions positions)
    {
        var m = LoadStories();
        var s = Steering(m, Random("topk", 64, Metadata(Hook), dSae: 64), mode, positions);
        var prompt = s.EncodePrompt("Once upon a time, there was a little girl");
        var features = ActiveFeatures(s, prompt);
        var baseline = s.GenerateTokens(prompt, null, Sampled());
        var comparison = s.Compare(prompt, features, [0, 4], Sampled());
        Assert.Equal("baseline", comparison.Runs[0].Label);
        Assert.Equal(baseline, comparison.Runs[0].Generated);
        Assert.All(comparison.Runs[0].Effects!.Kl, kl => Assert.Equal(0, kl));
        // The same hooks at strength 4 do act: the steered model's predictions move somewhere after the prompt.
        Assert.True(comparison.Runs[1].Effects!.MaxKl > 1e-3, $"{mode}/{positions}: strength 4 changed nothing");
    }

    [SharedTheory(StoriesWeights)]
    [InlineData("standard")]
    [InlineData("topk")]
    [InlineData("jumprelu")]
    [InlineData("gated")]
    [InlineData("transcoder")]
    public void ClampingLatentsToTheirOwnValuesLeavesTheLogitsUnchanged(string architecture)
    {
        var m = LoadStories();
        bool transcoder = architecture == "transcoder";
        var meta = transcoder ? Metadata("blocks.1.ln2.hook_normalized", hookOut: "blocks.1.hook_mlp_out") : Metadata(Hook);
        var sae = Hooked(m, Random(architecture, 64, meta, dOut: 64, dSae: 64));
        var tokens = Sequences(m, 1, 12, bos: 1)[0];
        var clean = m.Forward(tokens);
        var input = sae.Site.GatherInput(m.RunWithCache(tokens, [sae.Site.InputHook], returnLogits: false).Cache[sae.Site.InputHook]);
        var codes = sae.Sae.Forward(input).DenseFeatures();
        int changedSomewhere = 0;
        for (int p = 0; p < tokens.Length; p++)
        {
            // The three most active latents at p (and one that is off) set to their own values at p only.
            var order = Enumerable.Range(0, codes.Cols).OrderByDescending(j => codes[p, j]).ToArray();
            var features = order.Take(3).Append(order[^1]).Select(j => new SteeringFeature(j, codes[p, j])).ToArray();
            var own = new SteeringIntervention { Features = features, Mode = SteeringMode.Clamp };
            int at = p;
            var logits = m.Forward(tokens, new HookSet().AddSteering(sae, own, q => q == at));
            Assert.True(MaxAbsDiff(clean, logits) < 1e-5, $"{architecture} position {p}: {MaxAbsDiff(clean, logits)}");
            // Clamping the same latents to other values does change the logits (the test can fail).
            var other = own with { Features = features.Select(f => f with { Strength = f.Strength + 2 }).ToArray() };
            if (MaxAbsDiff(clean, m.Forward(tokens, new HookSet().AddSteering(sae, other, q => q == at))) > 1e-3) changedSomewhere++;
        }
        Assert.True(changedSomewhere > tokens.Length / 2, $"{architecture}: clamping to other values changed the logits at only {changedSomewhere} positions");
    }

    [SharedTheory(StoriesWeights)]
    [InlineData("none")]
    [InlineData("constant_norm_rescale")]
    public void ClampIsTheSaeOutputWithEditedLatentsPlusItsErrorTerm(string normalization)
    {
        // SAELens's clamp with use_error_term: x' = SAE.decode(f with f_i := v) + (x − SAE(x)); checked against the
        // standard SAE's own decoder, and ablation is the clamp to 0.
        var m = LoadStories();
        var sae = (StandardSae)SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = 64, DSae = 48, NormalizeActivations = normalization, Metadata = Metadata(Hook) }, Compute.All);
        var rng = new Rng(5);
        foreach (var (_, t) in sae.Params) rng.FillNormal(t.Span, 0, 0.3f);
        var hooked = Hooked(m, sae);
        var tokens = Sequences(m, 1, 9, bos: 1)[0];
        var x = m.RunWithCache(tokens, [Hook], returnLogits: false).Cache[Hook];
        var forward = sae.Forward(x);
        foreach (var (mode, value) in new[] { (SteeringMode.Clamp, 2.5), (SteeringMode.Ablate, 0.0) })
        {
            var iv = new SteeringIntervention { Features = [new(3, value), new(17, value)], Mode = mode };
            var steered = m.RunWithCache(tokens, [Hook], returnLogits: false, hooks: new HookSet().AddSteering(hooked, iv, tokens.Length)).Cache[Hook];
            var edited = forward.DenseFeatures().Clone();
            for (int r = 0; r < edited.Rows; r++) { edited[r, 3] = (float)value; edited[r, 17] = (float)value; }
            var decoded = sae.Decode(edited);
            forward.Norm?.Denormalize(decoded);
            var expected = x.Clone();
            TensorPrimitives.Subtract(expected.Span, forward.Output.Span, expected.Span); // the error term
            TensorPrimitives.Add(expected.Span, decoded.Span, expected.Span);
            Assert.True(MaxAbsDiff(expected, steered) < 2e-5, $"{normalization} {mode}: {MaxAbsDiff(expected, steered)}");
            Assert.True(MaxAbsDiff(x, steered) > 1e-2, $"{normalization} {mode}: nothing changed");
        }
    }

    [SharedTheory(StoriesWeights)]
    [InlineData(SteeringPositions.All)]
    [InlineData(SteeringPositions.Prompt)]
    [InlineData(SteeringPositions.Generated)]
    public void AddingATokensUnembeddingRaisesItsLogitAtSteeredPositionsAndNowhereBefore(SteeringPositions positions)
    {
        var m = LoadStories();
        const int token = 395, promptLength = 6; // "▁named"
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = 64, DSae = 4, Metadata = Metadata(Hook) }, Compute.All);
        m.Weights.Unembed.Row(token).CopyTo(sae.WDec.Row(2));
        var hooked = Hooked(m, sae);
        var iv = new SteeringIntervention { Features = [new(2, 6)], Positions = positions };
        var tokens = Sequences(m, 1, 14, bos: 1)[0];
        var clean = m.Forward(tokens);
        var steered = m.Forward(tokens, new HookSet().AddSteering(hooked, iv, promptLength));
        int first = positions == SteeringPositions.Generated ? promptLength : 0;
        for (int p = 0; p < tokens.Length; p++)
        {
            if (p < first) { Assert.Equal(clean.Row(p).ToArray(), steered.Row(p).ToArray()); continue; }
            if (!iv.Steers(p, promptLength)) continue; // after prompt-only steering: later positions see it through attention only
            double rise = steered[p, token] - clean[p, token];
            Assert.True(rise > 1, $"{positions}: the logit of token {token} rose by {rise:F3} at position {p}");
            // It rises relative to the other tokens, not only with them: its log-probability goes up.
            Assert.True(LogProb(steered.Row(p), token) > LogProb(clean.Row(p), token) + 1, $"{positions}: log p at position {p}");
        }
    }

    private static double LogProb(ReadOnlySpan<float> logits, int token) => logits[token] - LogitComparison.LogSumExp(logits, new float[logits.Length]);

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void PromptOnlySteeringLeavesTheGeneratedPositionsActivationsUntouched()
    {
        var m = LoadStories();
        var s = Steering(m, Random("topk", 64, Metadata(Hook), dSae: 64), positions: SteeringPositions.Prompt);
        var prompt = s.EncodePrompt("Once upon a time, there was a little girl");
        var iv = s.Intervention([new SteeringFeature(5, 3), new SteeringFeature(9, -2)]);
        var direction = SteeringHooks.Direction(s.Sae.Sae, iv.Features, normalize: false);
        // The hook's values as the model continues past the steering (a recorder after it on the same hook), KV cached.
        var seen = new List<Tensor>();
        var hooks = new HookSet().AddSteering(s.Sae, iv, prompt.Length).Edit(Hook, v => seen.Add(v.Clone()));
        var generated = m.Generate(prompt, Sampled(16), new Rng(3), hooks: hooks);
        int[] all = [.. prompt, .. generated];
        var recorded = Tensor.Uninitialized(all.Length - 1, 64);
        int row = 0;
        foreach (var t in seen) { t.Span.CopyTo(recorded.Span[(row * 64)..]); row += t.Rows; }
        Assert.Equal(all.Length - 1, row); // the last token is sampled, not run
        // The clean model reading the same tokens: the generated positions hold exactly its activations, the prompt's are shifted by the direction.
        var clean = m.RunWithCache(all[..^1], [Hook], returnLogits: false).Cache[Hook];
        for (int p = 0; p < all.Length - 1; p++)
        {
            var expected = clean.Row(p).ToArray();
            if (p < prompt.Length) TensorPrimitives.Add(expected, direction, expected);
            for (int j = 0; j < 64; j++) Assert.True(Math.Abs(expected[j] - recorded[p, j]) < 1e-5, $"position {p} dim {j}: {expected[j]} vs {recorded[p, j]}");
        }
    }

    public static TheoryData<string, SteeringMode, SteeringPositions> FamiliesModesPositions()
    {
        var data = new TheoryData<string, SteeringMode, SteeringPositions>();
        foreach (var mode in Enum.GetValues<SteeringMode>())
            foreach (var positions in Enum.GetValues<SteeringPositions>()) data.Add(Stories, mode, positions);
        data.Add(Gpt2, SteeringMode.Add, SteeringPositions.All);
        data.Add(Gpt2, SteeringMode.Clamp, SteeringPositions.Generated);
        data.Add("models/tiny-random-gptneox", SteeringMode.Add, SteeringPositions.Prompt);
        data.Add("models/tiny-random-gptneox", SteeringMode.Ablate, SteeringPositions.All);
        return data;
    }

    [SharedTheory(StoriesWeights, StoriesTokenizer, Gpt2Weights, "models/tiny-random-gptneox/model.safetensors")]
    [MemberData(nameof(FamiliesModesPositions))]
    public void KvCachedSteeredGenerationEqualsRecomputingWithoutTheCache(string modelDir, SteeringMode mode, SteeringPositions positions)
    {
        var m = HookedTransformer.Load(SharedData.Path(modelDir), Compute.All);
        var sae = Random("topk", 64, Metadata("blocks.1.hook_resid_post"), dSae: 64);
        var cached = Steering(m, sae, mode, positions, kvCache: true);
        var recomputed = Steering(m, sae, mode, positions, kvCache: false);
        int[] prompt = [1, 403, 407, 261, 378, 432, 383, 286];
        var features = ActiveFeatures(cached, prompt);
        var iv = cached.Intervention(features) with { Strength = 2 };
        var a = cached.GenerateTokens(prompt, iv, Sampled(24));
        var b = recomputed.GenerateTokens(prompt, iv, Sampled(24));
        Assert.Equal(b, a);
        Assert.Equal(24, a.Length);
        Assert.NotEqual(cached.GenerateTokens(prompt, null, Sampled(24)), a.AsEnumerable()); // the steering acted
    }

    [SharedFact(StoriesWeights, StoriesTokenizer)]
    public void SeveralFeaturesSteerAsTheirSummedDirection()
    {
        var m = LoadStories();
        var sae = Random("topk", 64, Metadata(Hook), dSae: 64);
        var s = Steering(m, sae);
        var features = new SteeringFeature[] { new(4, 2.0), new(21, -1.5), new(40, 0.5) };
        var tokens = Sequences(m, 1, 16, bos: 1)[0];
        // The summed direction written out by hand and added by a plain hook.
        var sum = new float[64];
        foreach (var f in features)
            for (int j = 0; j < 64; j++) sum[j] += (float)f.Strength * sae.WDec[f.Index, j];
        var byHand = m.Forward(tokens, new HookSet().Edit(Hook, v => { for (int r = 0; r < v.Rows; r++) TensorPrimitives.Add(v.Row(r), sum, v.Row(r)); }));
        var steered = m.Forward(tokens, new HookSet().AddSteering(s.Sae, s.Intervention(features), tokens.Length));
        Assert.True(MaxAbsDiff(byHand, steered) < 1e-5, $"{MaxAbsDiff(byHand, steered)}");
        Assert.True(MaxAbsDiff(m.Forward(tokens), steered) > 0.1);

        // drrik's multi-feature generate equals one feature whose decoder row is that sum.
        var single = Random("topk", 64, Metadata(Hook), dSae: 64);
        sum.CopyTo(single.WDec.Row(0));
        string multi = s.Generate("Once upon a time", featureIndices: [4, 21, 40], strengths: [2.0, -1.5, 0.5], maxNewTokens: 24);
        string one = Steering(m, single).Generate("Once upon a time", featureIdx: 0, strength: 1, maxNewTokens: 24);
        Assert.Equal(one, multi);
        Assert.NotEqual(s.Generate("Once upon a time", maxNewTokens: 24), multi);
    }

    [SharedFact(StoriesWeights)]
    public void AHeadIndexSteersOnlyThatHeadsSlice()
    {
        var m = LoadStories();
        const string z = "blocks.1.attn.hook_z"; // 8 heads of 8
        var sae = Hooked(m, Random("topk", 8, Metadata(z, head: 5), dSae: 16));
        var tokens = Sequences(m, 1, 7, bos: 1)[0];
        var clean = m.RunWithCache(tokens, [z], returnLogits: false).Cache[z];
        var iv = new SteeringIntervention { Features = [new(3, 2)] };
        var steered = m.RunWithCache(tokens, [z], returnLogits: false, hooks: new HookSet().AddSteering(sae, iv, tokens.Length)).Cache[z];
        for (int p = 0; p < tokens.Length; p++)
            for (int h = 0; h < 8; h++)
                for (int j = 0; j < 8; j++)
                {
                    float expected = clean[p * 64 + h * 8 + j] + (h == 5 ? 2 * sae.Sae.WDec[3, j] : 0);
                    Assert.Equal(expected, steered[p * 64 + h * 8 + j], 5);
                }
    }
}
