using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Models;

/// <summary>
/// How to pick each next token. Temperature 0 is greedy (argmax). Otherwise logits are divided by the temperature,
/// cut to the <see cref="TopK"/> largest (0 = all), then to the smallest set whose probability reaches
/// <see cref="TopP"/> (1 = all), and one token is drawn with the seeded <see cref="Rng"/>.
/// </summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; }
    public int TopK { get; init; }
    public float TopP { get; init; } = 1f;

    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be finite and >= 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top-k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1], got {TopP}");
    }
}

/// <summary>Generation settings: sampling, a token budget and an optional stop token.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 64;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Generation stops after emitting this token (it is included in the output); null never stops early.</summary>
    public int? StopToken { get; init; }
}

/// <summary>Picks each next token from a row of logits; may keep state (a random stream) between calls.</summary>
public interface ITokenSampler
{
    int Next(ReadOnlySpan<float> logits);
}

/// <summary>SaeSharp's sampler (<see cref="SamplingOptions"/>) drawing from a seeded <see cref="Rng"/>.</summary>
public sealed class RngSampler(SamplingOptions options, Rng? rng) : ITokenSampler
{
    public int Next(ReadOnlySpan<float> logits) => Sampler.Sample(logits, options, rng);
}

/// <summary>
/// llama2.c's <c>run.c</c> sampler, float for float, so a seed reproduces its output: logits divided by the
/// temperature, a float softmax, one coin per token from xorshift64* (<see cref="NextFloat"/>), then either a plain
/// draw over all tokens (top-p ≤ 0 or ≥ 1) or its nucleus rule: tokens below (1 − top_p)/(n − 1) are dropped first,
/// the rest sorted by probability, cut after the first whose running sum exceeds top_p, and the coin scaled by that
/// sum. Temperature 0 is argmax.
/// </summary>
public sealed class Llama2cSampler : ITokenSampler
{
    private readonly float _temperature, _topP;
    private ulong _state;

    public Llama2cSampler(float temperature, float topP, ulong seed)
    {
        if (!(temperature >= 0) || float.IsInfinity(temperature)) throw new ArgumentException($"temperature must be finite and >= 0, got {temperature}");
        if (float.IsNaN(topP)) throw new ArgumentException("top-p is NaN");
        // xorshift has the all-zero state as a fixed point; run.c replaces seed 0 by the clock.
        if (seed == 0 && temperature > 0) throw new ArgumentException("the llama2c sampler needs a non-zero seed (run.c would use the time)");
        _temperature = temperature; _topP = topP; _state = seed;
    }

    /// <summary>run.c's random_u32: xorshift64* on the state, top 32 bits of the product.</summary>
    public uint NextUInt32()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return (uint)((_state * 0x2545F4914F6CDD1DUL) >> 32);
    }

    /// <summary>run.c's random_f32: 24 random bits in [0, 1).</summary>
    public float NextFloat() => (NextUInt32() >> 8) / 16777216.0f;

    public int Next(ReadOnlySpan<float> logits)
    {
        int n = logits.Length;
        if (n == 0) throw new ArgumentException("empty logits");
        if (_temperature == 0) return Sampler.ArgMax(logits);
        var p = new float[n];
        for (int i = 0; i < n; i++) p[i] = logits[i] / _temperature;
        // softmax as run.c: float max, float exp, float running sum, division.
        float max = p[0];
        for (int i = 1; i < n; i++) if (p[i] > max) max = p[i];
        float sum = 0f;
        for (int i = 0; i < n; i++) { p[i] = MathF.Exp(p[i] - max); sum += p[i]; }
        for (int i = 0; i < n; i++) p[i] /= sum;
        float coin = NextFloat();
        return _topP <= 0 || _topP >= 1 ? Multinomial(p, coin) : TopP(p, _topP, coin);
    }

    private static int Multinomial(float[] p, float coin)
    {
        float cdf = 0f;
        for (int i = 0; i < p.Length; i++) { cdf += p[i]; if (coin < cdf) return i; }
        return p.Length - 1; // rounding
    }

    private static int TopP(float[] p, float topP, float coin)
    {
        int n = p.Length;
        float cutoff = (1.0f - topP) / (n - 1);
        var kept = new List<int>();
        for (int i = 0; i < n; i++) if (p[i] >= cutoff) kept.Add(i);
        // qsort by descending probability; equal probabilities keep index order (a stable merge sort, as glibc's).
        var order = kept.OrderByDescending(i => p[i]).ToArray();
        float cumulative = 0f;
        int last = order.Length - 1;
        for (int i = 0; i < order.Length; i++)
        {
            cumulative += p[order[i]];
            if (cumulative > topP) { last = i; break; }
        }
        float r = coin * cumulative, cdf = 0f;
        for (int i = 0; i <= last; i++) { cdf += p[order[i]]; if (r < cdf) return order[i]; }
        return order[last];
    }
}

public static class Sampler
{
    /// <summary>Picks the next token from one row of logits (see <see cref="SamplingOptions"/>).</summary>
    public static int Sample(ReadOnlySpan<float> logits, SamplingOptions options, Rng? rng)
    {
        options.Validate();
        if (logits.Length == 0) throw new ArgumentException("empty logits");
        if (options.Temperature == 0) return ArgMax(logits);
        if (rng is null) throw new ArgumentException("sampling with temperature > 0 needs an Rng");
        int n = logits.Length;
        if (options.TopK == 0 && options.TopP >= 1)
        {
            // plain temperature sampling needs no ordering
            float mx = TensorPrimitivesMax(logits);
            var w = new double[n];
            for (int i = 0; i < n; i++) w[i] = Math.Exp((logits[i] - mx) / options.Temperature);
            return rng.Categorical(w);
        }
        // Candidates sorted by logit (descending, ties by id) so top-k and top-p are cuts of one order.
        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        var keys = logits.ToArray();
        Array.Sort(order, (a, b) => keys[b] != keys[a] ? keys[b].CompareTo(keys[a]) : a.CompareTo(b));
        int keep = options.TopK > 0 ? Math.Min(options.TopK, n) : n;
        var probs = new double[keep];
        double max = keys[order[0]], sum = 0;
        for (int i = 0; i < keep; i++) { probs[i] = Math.Exp((keys[order[i]] - max) / options.Temperature); sum += probs[i]; }
        for (int i = 0; i < keep; i++) probs[i] /= sum;
        if (options.TopP < 1)
        {
            double acc = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                acc += probs[i];
                if (acc >= options.TopP) { cut = i + 1; break; }
            }
            keep = cut;
        }
        return order[rng.Categorical(probs.AsSpan(0, keep))];
    }

    private static float TensorPrimitivesMax(ReadOnlySpan<float> x) => System.Numerics.Tensors.TensorPrimitives.Max(x);

    /// <summary>Index of the largest logit (the first on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}

public sealed partial class HookedTransformer
{
    /// <summary>
    /// Continues <paramref name="prompt"/> with a KV cache, calling <paramref name="onToken"/> with each new token as it
    /// is produced. Returns the new tokens only.
    /// </summary>
    public int[] Generate(int[] prompt, GenerationOptions options, Rng? rng = null, Action<int>? onToken = null, HookSet? hooks = null)
    {
        options.Sampling.Validate();
        return Generate(prompt, new RngSampler(options.Sampling, rng), options, onToken, hooks);
    }

    /// <summary>
    /// <see cref="Generate(int[], GenerationOptions, Rng?, Action{int}?, HookSet?)"/> with another way of picking tokens
    /// (e.g. <see cref="Llama2cSampler"/>); <see cref="GenerationOptions.Sampling"/> is then not used.
    /// </summary>
    public int[] Generate(int[] prompt, ITokenSampler sampler, GenerationOptions options, Action<int>? onToken = null, HookSet? hooks = null)
    {
        if (prompt.Length == 0) throw new ArgumentException("prompt is empty (start it with the BOS token)", nameof(prompt));
        if (options.MaxNewTokens < 0) throw new ArgumentException($"max new tokens must be >= 0, got {options.MaxNewTokens}");
        int capacity = prompt.Length + options.MaxNewTokens;
        if (capacity > Config.MaxPositions)
            throw new ArgumentException($"prompt ({prompt.Length}) plus {options.MaxNewTokens} new tokens exceeds the model's {Config.MaxPositions} positions");
        var result = new List<int>();
        if (options.MaxNewTokens == 0) return [];
        var cache = new KvCache(Config, capacity);
        var logits = ForwardIncremental(prompt, cache, hooks);
        var last = logits.Row(logits.Rows - 1);
        while (true)
        {
            int next = sampler.Next(last);
            result.Add(next);
            onToken?.Invoke(next);
            if (result.Count == options.MaxNewTokens || next == options.StopToken) break;
            last = ForwardIncremental([next], cache, hooks).Row(0);
        }
        return result.ToArray();
    }

    /// <summary>log p(tokens[i+1] | tokens[..i+1]) for i in [0, T-1), in float64 from float32 logits.</summary>
    public double[] TokenLogProbs(int[] tokens, HookSet? hooks = null)
    {
        if (tokens.Length < 2) throw new ArgumentException("need at least two tokens to score next-token predictions", nameof(tokens));
        return TokenLogProbs(Forward(tokens, hooks), tokens);
    }

    /// <summary>Next-token log-probabilities from given logits [T, vocab].</summary>
    public static double[] TokenLogProbs(Tensor logits, ReadOnlySpan<int> tokens)
    {
        if (logits.Rows < tokens.Length) throw new ArgumentException($"logits have {logits.Rows} rows for {tokens.Length} tokens");
        var result = new double[tokens.Length - 1];
        for (int t = 0; t + 1 < tokens.Length; t++)
        {
            var row = logits.Row(t);
            double max = double.NegativeInfinity;
            foreach (float v in row) max = Math.Max(max, v);
            double sum = 0;
            foreach (float v in row) sum += Math.Exp(v - max);
            result[t] = row[tokens[t + 1]] - max - Math.Log(sum);
        }
        return result;
    }

    /// <summary>Mean next-token cross-entropy (nats) of a sequence.</summary>
    public double MeanNll(int[] tokens, HookSet? hooks = null) => -TokenLogProbs(tokens, hooks).Average();
}
