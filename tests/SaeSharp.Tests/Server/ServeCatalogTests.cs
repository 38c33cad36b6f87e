using System.Net;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Server;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using SaeSharp.Runs;
using SaeSharp.Saes;
using static SaeSharp.Tests.Evals.EvalFixtures;
using static SaeSharp.Tests.Reports.ReportFixtures;

namespace SaeSharp.Tests.Server;

/// <summary>
/// What `saesharp serve` opens at start, over the hand-made six-latent analysis (no model): two stores of one SAE, an
/// eval.json given with --eval, a match output whose reference is the served SAE; and the errors for bad inputs.
/// </summary>
public sealed class ServeCatalogTests : IAsyncLifetime
{
    private readonly TempDir _dir = new();
    private FeatureServer _server = null!;
    private readonly HttpClient _http = new();

    private string SaeDir => _dir.File("fixture-sae");

    /// <summary>The fixture analysis's SAE: six random latents over d_in 4 (what a real match output is computed from).</summary>
    private readonly Sae _sae = Random("standard", 4, Metadata("blocks.0.hook_resid_post"), dSae: 6);

    /// <summary>The fixture analysis with its SAE path set to a folder of this test (the match's reference).</summary>
    private string WriteStore(string name)
    {
        var a = SmallAnalysis();
        if (!Directory.Exists(SaeDir)) SaeFiles.Save(_sae, SaeDir);
        var analysis = new FeatureAnalysis { Summary = a.Summary with { SaePath = SaeDir, ModelPath = null }, Features = a.Features };
        string dir = _dir.File(name);
        Directory.CreateDirectory(dir);
        FeatureStore.Write(Path.Combine(dir, FeatureStore.FileName), analysis);
        return dir;
    }

    /// <summary>A match output in README's "Match output" layout: reference = the fixture SAE (6 latents), one other checkpoint.</summary>
    private string WriteMatch(string? matchesCsv = null)
    {
        string dir = _dir.File("match" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        var root = new JsonObject
        {
            ["settings"] = new JsonObject { ["by"] = "activations", ["distance_threshold"] = 0.5 },
            ["reference_column"] = 1,
            ["checkpoints"] = new JsonArray(
                new JsonObject { ["name"] = "step_100", ["path"] = _dir.File("other-sae"), ["step"] = 100, ["d_sae"] = 6, ["matched"] = 3, ["unmatched"] = 1, ["dead_latents"] = 2,
                    ["mean_matched_distance"] = 0.2, ["mean_matched_decoder_cosine"] = 0.9, ["fraction_matched"] = new JsonObject { ["0.5"] = 0.5 } },
                new JsonObject { ["name"] = "fixture-sae", ["path"] = SaeDir, ["step"] = 200, ["d_sae"] = 6, ["matched"] = 4, ["unmatched"] = 0, ["dead_latents"] = 2,
                    ["mean_matched_distance"] = 0.0, ["mean_matched_decoder_cosine"] = 1.0, ["fraction_matched"] = new JsonObject { ["0.5"] = 0.667 } }),
        };
        File.WriteAllText(Path.Combine(dir, SaeSharp.Runs.MatchRun.JsonFile), root.ToJsonString());
        var csv = new System.Text.StringBuilder("checkpoint,reference_latent,latent,distance,decoder_cosine,status\n");
        for (int i = 0; i < 6; i++)
        {
            string status = i < 2 ? "dead" : i == 5 ? "unmatched" : "matched";
            csv.Append($"step_100,{i},{(i < 2 ? "" : (7 - i).ToString())},{(i < 2 ? "" : (0.1 * i).ToString("R", System.Globalization.CultureInfo.InvariantCulture))},,{status}\n");
            csv.Append($"fixture-sae,{i},{i},{(i < 2 ? "" : "0")},1,{(i < 2 ? "dead" : "matched")}\n");
        }
        File.WriteAllText(Path.Combine(dir, SaeSharp.Runs.MatchRun.MatchesFile), matchesCsv ?? csv.ToString());
        return dir;
    }

    public async Task InitializeAsync()
    {
        string a = WriteStore("a"), b = WriteStore("b");
        string eval = _dir.File("eval.json");
        File.WriteAllText(eval, new JsonObject
        {
            ["saes"] = new JsonArray(new JsonObject { ["path"] = SaeDir, ["metrics"] = new JsonObject { ["model_behavior_preservation"] = new JsonObject { ["kl_div_score"] = 0.875 } } }),
        }.ToJsonString());
        _server = await FeatureServer.StartAsync(new ServeSettings { Port = 0 }, new ServeInputs { Stores = [a, Path.Combine(b, FeatureStore.FileName)], EvalFiles = [eval], MatchDirs = [WriteMatch()] },
            Compute.Single);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _http.Dispose();
        _dir.Dispose();
    }

    private Task<JsonNode> Json(string path) => Json(_server.Url, path);

    private async Task<JsonNode> Json(string url, string path)
    {
        using var r = await _http.GetAsync(url + path);
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{path}: {(int)r.StatusCode} {body}");
        return JsonNode.Parse(body)!;
    }

    [Fact]
    public async Task StoresAreNumberedNamedAndGivenTheirEvalMetricsAndMatches()
    {
        Assert.StartsWith("http://127.0.0.1:", _server.Url);
        var root = await Json("/api/stores");
        var stores = root["stores"]!.AsArray();
        Assert.Equal(["fixture", "fixture-2"], stores.Select(s => (string)s!["name"]!));
        Assert.All(stores, s => Assert.Equal(0.875, (double)s!["eval_metrics"]!["model_behavior_preservation"]!["kl_div_score"]!));
        Assert.All(stores, s => Assert.False((bool)s!["live"]!));
        Assert.Contains("names no model", (string)stores[0]!["live_unavailable"]!);
        Assert.Equal([0], stores[0]!["matches"]!.AsArray().Select(m => (int)m!));
        Assert.Equal(2, root["matches"]![0]!["checkpoints"]!.AsArray().Count);
    }

    [Fact]
    public async Task TheMatchViewFollowsAReferenceLatentThroughTheCheckpoints()
    {
        var v = await Json("/api/matches/0/latents/3");
        var rows = v["checkpoints"]!.AsArray();
        Assert.Equal(["step_100", "fixture-sae"], rows.Select(r => (string)r!["checkpoint"]!));
        Assert.Equal(4, (int)rows[0]!["latent"]!);                  // 7 - 3
        Assert.Equal(0.1 * 3, (double)rows[0]!["distance"]!);
        Assert.Null(rows[0]!["decoder_cosine"]);
        Assert.Null(rows[0]!["feature_url"]);                        // step_100's SAE is not served
        Assert.Equal("/stores/0/features/3", (string)rows[1]!["feature_url"]!); // the reference is store 0 (the first store of its SAE)
        Assert.Equal("dead", (string)(await Json("/api/matches/0/latents/0"))["checkpoints"]![0]!["status"]!);
        string page = await _http.GetStringAsync(_server.Url + "/stores/0/features/3");
        Assert.Contains("<a href=\"/matches/0/latents/3\">through checkpoints", page);
        using var r = await _http.GetAsync(_server.Url + "/matches/0/latents/6");
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        using var redirect = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        using var go = await redirect.GetAsync(_server.Url + "/matches/0?latent=2");
        Assert.Equal("/matches/0/latents/2", go.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task ARealMatchOutputIsReadAndItsPartnersShown()
    {
        // A copy of the reference whose decoder row p is the reference's row order[p]: by decoder, reference latent
        // order[p] is matched to latent p at distance 0.
        int[] order = [3, 0, 5, 1, 4, 2];
        var copy = SaeRegistry.Create(_sae.Config, Compute.Single);
        for (int p = 0; p < order.Length; p++) _sae.WDec.Row(order[p]).CopyTo(copy.WDec.Row(p));
        string run = _dir.File("perm_200");
        SaeFiles.Save(copy, run);
        string outDir = _dir.File("real-match");
        MatchRun.Execute(new MatchSettings { By = "decoder", Report = false }, SaeDir, [run], null, null, outDir, TextReporter.Silent, Compute.Single);
        await using var server = await FeatureServer.StartAsync(new ServeSettings { Port = 0 }, new ServeInputs { Stores = [_dir.File("a")], MatchDirs = [outDir] }, Compute.Single);
        var summary = await Json(server.Url, "/api/matches/0");
        Assert.Equal("decoder", (string)summary["matched_by"]!);
        Assert.Equal(["perm_200", "fixture-sae"], summary["checkpoints"]!.AsArray().Select(c => (string)c!["name"]!));
        Assert.Equal(200, (long)summary["checkpoints"]![0]!["step"]!);
        for (int p = 0; p < order.Length; p++)
        {
            var row = (await Json(server.Url, $"/api/matches/0/latents/{order[p]}"))["checkpoints"]![0]!;
            Assert.Equal(p, (int)row["latent"]!);
            Assert.Equal("matched", (string)row["status"]!);
            Assert.Equal(1.0, (double)row["decoder_cosine"]!, 5);
        }
    }

    [Fact]
    public async Task WithoutAModelLiveWorkIsRefusedWithTheReason()
    {
        using var content = new StringContent("{\"text\": \"hello\"}", System.Text.Encoding.UTF8, "application/json");
        using var r = await _http.PostAsync(_server.Url + "/api/stores/0/search", content);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Contains("has no live model: the analysis names no model; give --model", await r.Content.ReadAsStringAsync());
        string page = await _http.GetStringAsync(_server.Url + "/stores/0/search");
        Assert.Contains("No live model for this store", page);
    }

    [Fact]
    public async Task PagesAreEscapedAndCarryTheirSecurityHeaders()
    {
        using var r = await _http.GetAsync(_server.Url + "/stores/0/features/4");
        string html = await r.Content.ReadAsStringAsync();
        Assert.Contains("&lt;b&gt;", html);           // the fixture's " <b>" token
        Assert.Contains("&lt;&amp;&gt;", html);       // its logit token " <&>"
        Assert.Contains("default-src 'self'", r.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", r.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.DoesNotContain("http://", html.Replace(_server.Url, ""));
        Assert.DoesNotContain("https://", html);
    }

    [Fact]
    public async Task BadInputsAtStartAreNamed()
    {
        async Task<string> Fails(ServeInputs inputs, ServeSettings? s = null) =>
            (await Assert.ThrowsAnyAsync<Exception>(() => FeatureServer.StartAsync(s ?? new ServeSettings { Port = 0 }, inputs, Compute.Single))).Message;
        Assert.Contains("no features.db there", await Fails(new ServeInputs { Stores = [_dir.File("nowhere")] }));
        Assert.Contains("give at least one --store", await Fails(new ServeInputs { Stores = [] }));
        string store = _dir.File("a");
        Assert.Contains("no match.json", await Fails(new ServeInputs { Stores = [store], MatchDirs = [_dir.Root] }));
        Assert.Contains("line 2: reference_latent '9' is not below the reference's d_sae 6",
            await Fails(new ServeInputs { Stores = [store], MatchDirs = [WriteMatch("checkpoint,reference_latent,latent,distance,decoder_cosine,status\nstep_100,9,1,0.1,,matched\n")] }));
        Assert.Contains("no row for reference latent 0", await Fails(new ServeInputs { Stores = [store], MatchDirs = [WriteMatch("checkpoint,reference_latent,latent,distance,decoder_cosine,status\n")] }));
        Assert.Contains("host: expected an IP address", await Fails(new ServeInputs { Stores = [store] }, new ServeSettings { Host = "../x" }));
        Assert.Contains("page_size (2000) is larger than max_page_size", await Fails(new ServeInputs { Stores = [store] }, new ServeSettings { PageSize = 2000 }));
        File.WriteAllText(_dir.File("broken.db"), "not sqlite");
        Assert.Contains("not a SaeSharp feature store", await Fails(new ServeInputs { Stores = [_dir.File("broken.db")] }));
    }
}
