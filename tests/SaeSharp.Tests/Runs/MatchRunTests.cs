using System.Text.Json.Nodes;
using SaeSharp.Data;
using SaeSharp.IO;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Tests.Cli;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Runs;

/// <summary>
/// `saesharp match` end to end on stories260K: a run whose latents are a known permutation of the reference's (plus
/// noise) is matched back exactly, through its own model and the text; the files; reorder then re-match is the identity.
/// </summary>
public sealed class MatchRunTests : IDisposable
{
    private const string Hook = "blocks.2.hook_resid_post";
    private const int Latents = 48;
    private readonly string _dir = Directory.CreateTempSubdirectory("saesharp-match").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private string Text() => HeldOutText(_dir, 80);

    private JsonObject Meta() => new() { ["hook_name"] = Hook, ["model_path"] = SharedData.Path(Stories) };

    private string Save(Sae sae, string name) => SaveIn(_dir, sae, name);

    /// <summary>A copy of <paramref name="sae"/> whose latent p is its latent order[p], encoder weights jittered by <paramref name="noise"/>.</summary>
    private static Sae Permuted(Sae sae, int[] order, float noise, ulong seed)
    {
        var copy = SaeRegistry.Create(sae.Config, Compute.Single);
        var rng = new Rng(seed);
        int d = sae.Config.DIn, n = sae.Config.DSae;
        for (int p = 0; p < n; p++)
        {
            for (int i = 0; i < d; i++)
            {
                copy.WEnc[i, p] = sae.WEnc[i, order[p]] + noise * (float)rng.Normal();
                copy.WDec[p, i] = sae.WDec[order[p], i];
            }
            copy.Params["b_enc"][p] = sae.Params["b_enc"][order[p]];
        }
        sae.BDec.Span.CopyTo(copy.BDec.Span);
        return copy;
    }

    private static MatchSettings Settings(string by = "activations") => new()
    {
        By = by, Tokens = 2048, Contexts = new ContextSettings { ContextSize = 64, StoreBatchSizePrompts = 8 }, ReportFeatures = 2, TopExamples = 2,
    };

    [SharedFact(StoriesWeights, StoriesTokenizer, Corpus)]
    public void APermutedRunIsMatchedBackAndReorderThenRematchIsTheIdentity()
    {
        string text = Text();
        var reference = Random("topk", 64, Meta(), seed: 5, dSae: Latents);
        var order = new Rng(2).Permutation(Latents);
        string final = Save(reference, "final");
        string step5 = Save(Permuted(reference, order, 0.01f, 3), "step5");
        string step0 = Save(Random("topk", 64, Meta(), seed: 11, dSae: Latents), "step0");
        string outDir = Path.Combine(_dir, "out");
        var lines = new StringWriter();
        var r = MatchRun.Execute(Settings(), final, [step0, step5], text, null, outDir, new TextReporter(lines), Compute.All);

        Assert.Equal(["step0", "step5", "final"], r.Series.Checkpoints);
        Assert.Equal(2, r.Series.ReferenceColumn);
        // 32 contexts of 64 tokens, batched as train and eval batch them, less their BOS positions.
        var model = LoadStories();
        var tokenizer = SaeSharp.Text.Tokenizers.Load(SharedData.Path(Stories));
        var contexts = ModelInputs.Contexts(File.ReadLines(text).Where(l => l.Length > 0).Select(l => tokenizer.Encode(l)), model.Config, Settings().Contexts).Take(32).ToList();
        Assert.Equal(contexts.Sum(c => c.Count(t => t != model.Config.BosTokenId && t != model.Config.EosTokenId)), r.Tokens);
        var match = r.Series.Match(1)!;
        for (int p = 0; p < Latents; p++)
        {
            int i = order[p];
            if (match.DeadReference[i]) continue;
            Assert.Equal(p, match.Partner[i]);
            Assert.InRange(match.Distance[i], 0, 0.3); // the noise moves some marginal top-k selections
        }
        Assert.True(r.Series.FractionMatched(0, 0.5) < 0.5, "an unrelated SAE should match few latents");

        // Files.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, MatchRun.JsonFile)))!;
        Assert.Equal(3, json["checkpoints"]!.AsArray().Count);
        Assert.Equal(5L, (long?)json["checkpoints"]![1]!["step"]);
        Assert.Equal(r.Series.Counts(1, 0.5).Matched, (int)json["checkpoints"]![1]!["matched"]!);
        Assert.Equal(r.Tokens, (long)json["inputs"]!["tokens"]!);
        using (var f = SafetensorsFile.Open(Path.Combine(outDir, MatchRun.DistancesFile)))
        {
            Assert.Equal([Latents, 3], f.Entry("distances").Shape);
            var partners = f.ReadInt32("partners");
            Assert.Equal(match.Partner[order[7]], partners[order[7] * 3 + 1]);
            Assert.Equal("step0,step5,final", f.Metadata["checkpoints"]);
        }
        var csv = File.ReadAllLines(Path.Combine(outDir, MatchRun.CheckpointsFile));
        Assert.Equal(4, csv.Length);
        Assert.StartsWith("checkpoint,step,d_sae,dead,dead_reference,matched,unmatched,frac<0.1", csv[0]);
        Assert.Equal(3 * Latents + 1, File.ReadAllLines(Path.Combine(outDir, MatchRun.MatchesFile)).Length);
        foreach (var fig in new[] { "activation_cosine_histograms", "decoder_cosine_histograms", "fraction_matched", "matched_distances" })
        {
            var png = File.ReadAllBytes(Path.Combine(outDir, "figures", fig + ".png"));
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
            Assert.Contains("<svg", File.ReadAllText(Path.Combine(outDir, "figures", fig + ".svg")));
        }
        string html = File.ReadAllText(Path.Combine(outDir, "match_report.html"));
        Assert.Contains("figures/fraction_matched.png", html);
        Assert.Contains("reference latent", html);
        Assert.Contains("frac&lt;0.5", html);

        // Reorder step5 into the reference's order; matched again it pairs every latent with itself.
        string reordered = MatchRun.Reorder(outDir, "step5", Path.Combine(_dir, "step5-reordered"), TextReporter.Silent);
        var again = MatchRun.Execute(Settings() with { Report = false }, final, [reordered], text, null, Path.Combine(_dir, "again"), TextReporter.Silent, Compute.All);
        var m2 = again.Series.Match(0)!;
        for (int i = 0; i < Latents; i++) Assert.Equal(m2.DeadReference[i] ? -1 : i, m2.Partner[i]);
    }

    [SharedFact(StoriesWeights)]
    public void DecoderMatchingNeedsNoDataAndReportsMeanMaxCosine()
    {
        var reference = Random("topk", 64, new JsonObject { ["hook_name"] = Hook }, seed: 5, dSae: Latents);
        var order = new Rng(4).Permutation(Latents);
        string final = Save(reference, "final");
        string other = Save(Permuted(reference, order, 0, 1), "other");
        var (code, output, err) = CliRunner.Run("match", "--reference", final, "--run", other, "--by", "decoder", "--out", Path.Combine(_dir, "dec"));
        Assert.True(code == 0, err + output);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "dec", MatchRun.JsonFile)))!;
        Assert.Equal(1.0, (double)json["checkpoints"]![0]!["mean_max_cosine"]!, 5);
        Assert.Equal(1.0, (double)json["checkpoints"]![0]!["fraction_matched"]!["0.1"]!, 12);
        Assert.Contains("frac<0.1", output);

        var reorder = CliRunner.Run("match", "reorder", "--match", Path.Combine(_dir, "dec"), "--run", "other");
        Assert.True(reorder.Code == 0, reorder.Err + reorder.Out);
        var moved = SaeFiles.Load(Path.Combine(_dir, "dec", "reordered", "other"), Compute.Single);
        Assert.Equal(reference.WDec.ToArray(), moved.WDec.ToArray());

        var bad = CliRunner.Run("match", "--reference", final, "--run", other, "--by", "nope");
        Assert.Equal(1, bad.Code);
        Assert.Contains("by: expected activations or decoder", bad.Err);
        var noModel = CliRunner.Run("match", "--reference", final, "--run", other, "--dataset", "x.txt", "--out", Path.Combine(_dir, "nomodel"));
        Assert.Equal(1, noModel.Code);
        Assert.Contains("metadata.model_path is missing", noModel.Err);
        var self = CliRunner.Run("match", "reorder", "--match", Path.Combine(_dir, "dec"), "--run", "final");
        Assert.Contains("is the reference", self.Err);
    }
}
