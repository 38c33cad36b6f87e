using System.Text.Json.Nodes;
using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Saes;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Evals;

/// <summary>Models, token batches and SAEs with known behaviour for the splice and evaluation tests.</summary>
public static class EvalFixtures
{
    public const string Stories = "models/stories260K";
    public const string StoriesWeights = Stories + "/model.safetensors";
    public const string Gpt2 = "models/tiny-random-gpt2";
    public const string Gpt2Weights = Gpt2 + "/model.safetensors";

    public const string Corpus = "corpora/tinystories_validation_head.txt";
    public const string StoriesTokenizer = Stories + "/tokenizer.json";

    /// <summary>The first <paramref name="count"/> contexts of <paramref name="length"/> tokens of the TinyStories corpus, batched as SAELens does (BOS first, BOS between stories).</summary>
    public static int[][] TextContexts(HookedTransformer model, int count, int length)
    {
        var tokenizer = SaeSharp.Text.Tokenizers.Load(SharedData.Path(Stories));
        var docs = File.ReadLines(SharedData.Path(Corpus)).Where(l => l.Length > 0).Select(l => tokenizer.Encode(l));
        return SaeSharp.Runs.ModelInputs.Contexts(docs, model.Config, new SaeSharp.Data.ContextSettings { ContextSize = length }).Take(count).ToArray();
    }

    /// <summary>The corpus's last 10% of lines (held out from training in the end-to-end runs), their first <paramref name="count"/>, as dir/heldout.txt.</summary>
    public static string HeldOutText(string dir, int count)
    {
        var lines = File.ReadAllLines(SharedData.Path(Corpus));
        string path = System.IO.Path.Combine(dir, "heldout.txt");
        File.WriteAllLines(path, lines[(lines.Length * 9 / 10)..].Take(count));
        return path;
    }

    /// <summary>Saves <paramref name="sae"/> as the SAELens folder dir/name and returns it.</summary>
    public static string SaveIn(string dir, Sae sae, string name)
    {
        string folder = System.IO.Path.Combine(dir, name);
        SaeFiles.Save(sae, folder);
        return folder;
    }

    public static HookedTransformer LoadStories() => HookedTransformer.Load(SharedData.Path(Stories), Compute.All);
    public static HookedTransformer LoadGpt2() => HookedTransformer.Load(SharedData.Path(Gpt2), Compute.All);

    /// <summary><paramref name="count"/> sequences of <paramref name="length"/> seeded random tokens in [3, vocab), each starting with <paramref name="bos"/>.</summary>
    public static int[][] Sequences(HookedTransformer model, int count, int length, int bos, ulong seed = 1)
    {
        var rng = new Rng(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var s = new int[length];
            s[0] = bos;
            for (int i = 1; i < length; i++) s[i] = 3 + rng.NextInt(model.Config.VocabSize - 3);
            return s;
        }).ToArray();
    }

    public static JsonObject Metadata(string hook, int? head = null, string? hookOut = null)
    {
        var m = new JsonObject { ["hook_name"] = hook, ["hook_head_index"] = head };
        if (hookOut is not null) m["hook_name_out"] = hookOut;
        return m;
    }

    /// <summary>
    /// A standard SAE reconstructing its input exactly: d_sae = 2·d, W_enc = [I, −I], W_dec = [I; −I], so
    /// ReLU(x) − ReLU(−x) = x.
    /// </summary>
    public static Sae Identity(int d, JsonObject metadata)
    {
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "standard", DIn = d, DSae = 2 * d, ApplyBDecToInput = false, Metadata = metadata }, Compute.All);
        for (int i = 0; i < d; i++)
        {
            sae.WEnc[i, i] = 1; sae.WEnc[i, d + i] = -1;
            sae.WDec[i, i] = 1; sae.WDec[d + i, i] = -1;
        }
        return sae;
    }

    /// <summary>An SAE of <paramref name="architecture"/> whose every weight is zero: it outputs zeros.</summary>
    public static Sae Zero(string architecture, int d, JsonObject metadata) =>
        SaeRegistry.Create(new SaeConfig { Architecture = architecture, DIn = d, DSae = 16, K = 4, Metadata = metadata, MatryoshkaWidths = architecture == "matryoshka_batchtopk" ? [8, 16] : null }, Compute.All);

    /// <summary>
    /// An SAE of <paramref name="architecture"/> with seeded random weights (transcoders: d_out = <paramref name="dOut"/>)
    /// that reconstructs poorly but fires: positive jumprelu thresholds, a batch top-k threshold of 0.05.
    /// </summary>
    public static Sae Random(string architecture, int dIn, JsonObject metadata, int dOut = 0, ulong seed = 7, int dSae = 32)
    {
        var kind = SaeRegistry.Get(architecture);
        bool transcoder = kind.Transcoder;
        var sae = SaeRegistry.Create(new SaeConfig
        {
            Architecture = architecture, DIn = dIn, DSae = dSae, K = 4, DOut = transcoder ? dOut : 0, ApplyBDecToInput = !transcoder,
            MatryoshkaWidths = kind.CfgKeys.Contains("matryoshka_widths") ? [dSae / 2, dSae] : null, Metadata = metadata,
        }, Compute.All);
        var rng = new Rng(seed);
        foreach (var (name, t) in sae.Params)
        {
            rng.FillNormal(t.Span, 0, name.StartsWith("W_", StringComparison.Ordinal) ? 0.3f : 0.05f);
            if (name == "threshold") for (int i = 0; i < t.Length; i++) t[i] = MathF.Abs(t[i]);
        }
        if (sae is TopKSae { IsBatch: true } b) b.TopKThreshold = 0.05;
        return sae;
    }

    public static HookedSae Hooked(HookedTransformer model, Sae sae, string name = "sae") =>
        new(name, sae, SaeSite.For(model, sae.Config, name));

    public static float MaxAbsDiff(Tensor a, Tensor b)
    {
        float m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }
}
