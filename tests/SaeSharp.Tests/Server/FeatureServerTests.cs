using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Runs;
using SaeSharp.Server;

namespace SaeSharp.Tests.Server;

/// <summary>
/// The served stories store over HTTP: every JSON endpoint against the feature store and the library it wraps, live
/// search and steering against `saesharp features` and `saesharp steer`, 400s for bad values, and nothing read or
/// written beyond the stores.
/// </summary>
[Collection(ServedStoriesCollection.Name)]
public sealed class FeatureServerTests(ServedStories served)
{
    [ServedFact]
    public async Task TheOverviewListsTheStoreWithItsAnalysisAndEvalMetrics()
    {
        var root = await served.GetJson("/api/stores");
        var store = root["stores"]![0]!;
        using var reader = FeatureStore.Open(served.StorePath);
        Assert.Equal(reader.Summary.SaeName, (string)store["name"]!);
        Assert.Equal(48, (int)store["d_sae"]!);
        Assert.Equal(reader.Summary.Metrics["l0"], (double)store["metrics"]!["l0"]!);
        Assert.True((bool)store["live"]!);
        // The eval.json beside the store is matched to its SAE by path.
        var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(served.StoreDir, EvalRun.JsonFile)))!["saes"]![0]!["metrics"]!;
        Assert.Equal((double)eval["model_behavior_preservation"]!["kl_div_score"]!, (double)store["eval_metrics"]!["model_behavior_preservation"]!["kl_div_score"]!);
        string html = await (await served.Get("/")).Content.ReadAsStringAsync();
        Assert.Contains($"<a href=\"/stores/0\">{reader.Summary.SaeName}</a>", html);
        Assert.Contains("<img src=\"/stores/0/density.svg\"", html);
        string svg = await (await served.Get("/stores/0/density.svg")).Content.ReadAsStringAsync();
        Assert.Contains("Distribution of feature densities", svg);
    }

    [ServedFact]
    public async Task TheFeatureListSortsFiltersAndPagesAsTheStoreDoes()
    {
        using var reader = FeatureStore.Open(served.StorePath);
        var page = await served.GetJson("/api/stores/0/features?sort=max_activation&order=desc&offset=5&limit=10");
        var expected = reader.Page("max_activation", descending: true, 5, 10);
        Assert.Equal(expected.Select(r => r.Feature), page["rows"]!.AsArray().Select(r => (int)r!["feature"]!));
        Assert.Equal(48, (int)page["total"]!);
        Assert.Equal(expected[0].MaxActivation, (double)page["rows"]![0]!["max_activation"]!);

        double cut = reader.Rows.Select(r => r.Density).Order().ElementAt(30);
        var filtered = await served.GetJson($"/api/stores/0/features?sort=feature&order=asc&min_density={cut:R}&hide_dead=true&limit=1000");
        var want = reader.Rows.Where(r => r.Density >= cut && r.Fires > 0).Select(r => r.Feature).ToArray();
        Assert.Equal(want.Length, (int)filtered["total"]!);
        Assert.Equal(want, filtered["rows"]!.AsArray().Select(r => (int)r!["feature"]!));

        string html = await (await served.Get("/stores/0/features?sort=density&order=desc&limit=20")).Content.ReadAsStringAsync();
        Assert.Contains("latents 1–20 of 48 passing the filter", html);
        Assert.Contains("id=\"next\" href=\"?sort=density&amp;order=desc&amp;offset=20&amp;limit=20\"", html);
        int densest = reader.Page("density", true, 0, 1)[0].Feature;
        Assert.Contains($"<tr><td><a href=\"/stores/0/features/{densest}\">{densest}</a>", html);
    }

    [ServedFact]
    public async Task AFeaturePageShowsTheStoresExamplesLogitsAndHistogram()
    {
        using var reader = FeatureStore.Open(served.StorePath);
        int j = reader.Page("density", true, 0, 1)[0].Feature;
        var detail = reader.Detail(j);
        var json = await served.GetJson($"/api/stores/0/features/{j}");
        var examples = json["detail"]!["top_examples"]!.AsArray();
        Assert.Equal(detail.TopExamples.Count, examples.Count);
        Assert.Equal(detail.TopExamples[0].Activation, (float)examples[0]!["activation"]!);
        Assert.Equal(detail.TopExamples[0].Tokens, examples[0]!["tokens"]!.AsArray().Select(t => (string)t!));
        Assert.Equal(detail.TopLogits.Select(l => l.Token), json["detail"]!["top_logits"]!.AsArray().Select(t => (string)t!["token"]!));

        string html = await (await served.Get($"/stores/0/features/{j}")).Content.ReadAsStringAsync();
        Assert.Equal(detail.TopExamples.Count + detail.QuantileGroups.Sum(g => g.Examples.Count), html.Split("<div class=\"ex\">").Length - 1);
        var top = detail.TopExamples[0];
        string center = top.Tokens[top.Center];
        Assert.Contains($"title=\"{System.Net.WebUtility.HtmlEncode(center)}: {top.Acts[top.Center].ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}\"", html);
        Assert.Contains($"<img src=\"/stores/0/features/{j}/activations.svg\"", html);
        string svg = await (await served.Get($"/stores/0/features/{j}/activations.svg")).Content.ReadAsStringAsync();
        Assert.Contains($"Activation histogram for feature {j}", svg);
    }

    private const string Text = "Once upon a time, there was a little girl named Lily. She loved to play outside.";

    [ServedFact]
    public async Task ATextSearchFindsWhatSaesharpFeaturesFinds()
    {
        var job = await served.RunJob("/api/stores/0/search", new { text = Text, top_k = 6 });
        Assert.Equal("done", (string)job["state"]!);
        Assert.Equal(1.0, (double)job["progress"]!);
        var result = job["result"]!;
        var direct = PromptFeaturesRun.Search(served.Steering(), Text, new PromptFeaturesSettings { TopK = 6 });
        var features = result["features"]!.AsArray();
        Assert.Equal(direct.Features.Select(f => f.Activation.FeatureIdx), features.Select(f => (int)f!["feature"]!));
        Assert.Equal(direct.Features[0].Activation.Activation, (double)features[0]!["activation"]!);
        Assert.Equal(direct.TokenActivations[0], features[0]!["token_activations"]!.AsArray().Select(a => (float)a!));
        Assert.Equal(direct.Tokens, result["tokens"]!.AsArray().Select(t => (int)t!["id"]!));
        Assert.True((bool)result["tokens"]![0]!["special"]!); // BOS: shown, not counted
        Assert.Equal(direct.Tokens.Length - 1, (int)result["counted_positions"]!);
        Assert.Equal($"/stores/0/features/{direct.Features[0].Activation.FeatureIdx}", (string)features[0]!["url"]!);
    }

    [ServedFact]
    public async Task ASteeringComparisonIsSaesharpSteersAtOneSeed()
    {
        var job = await served.RunJob("/api/stores/0/steer", new { prompt = "Once upon a time", features = "3=4,7=-2", strengths = "0,2", max_tokens = 10, seed = 5 });
        Assert.Equal("done", (string)job["state"]!);
        var settings = new SteerSettings { Features = "3=4,7=-2", Strengths = "0,2", MaxTokens = 10, Seed = 5 };
        var direct = SteerRun.Compare(served.Steering(settings), settings, "Once upon a time");
        var runs = job["result"]!["runs"]!.AsArray();
        Assert.Equal(["baseline", "strength_2.0"], runs.Select(r => (string)r!["label"]!));
        Assert.Equal(direct.Runs.Select(r => r.Text), runs.Select(r => (string)r!["text"]!));
        Assert.Equal(direct.Runs[1].Effects!.MeanKl, (double)runs[1]!["mean_kl"]!);
        Assert.Equal(0.0, (double)runs[0]!["mean_kl"]!);
    }

    // Kestrel leaves %2F encoded in a path segment, so a route value keeps it (the query string is decoded).
    public static TheoryData<string, string, string> BadGets() => new()
    {
        { "/api/stores/x", "store 'x'", "store" },
        { "/api/stores/-1/features", "store '-1'", "negative" },
        { "/api/stores/1", "from 0 to 0", "out of range" },
        { "/api/stores/..%2F..%2Fetc%2Fpasswd/features", "store '..%2F..%2Fetc%2Fpasswd'", "path-like store" },
        { "/stores/0/features/48", "feature '48'", "feature past d_sae" },
        { "/api/stores/0/features/1e3", "feature '1e3'", "feature not an integer" },
        { "/api/stores/0/features/..%2F..%2Fsecret.txt", "feature '..%2F..%2Fsecret.txt'", "path-like feature" },
        { "/api/stores/0/features/99999999999", "feature '99999999999'", "huge feature" },
        { "/stores/0/features/-3/activations.svg", "feature '-3'", "figure of a bad feature" },
        { "/api/stores/0/features?sort=..%2F..%2Fsecret.txt", "sort '../../secret.txt'", "path-like sort" },
        { "/api/stores/0/features?order=sideways", "order 'sideways'", "order" },
        { "/api/stores/0/features?limit=0", "limit '0'", "empty page" },
        { "/api/stores/0/features?limit=100000", "limit '100000'", "page too long" },
        { "/api/stores/0/features?offset=-1", "offset '-1'", "negative offset" },
        { "/api/stores/0/features?min_density=NaN", "min_density 'NaN'", "NaN filter" },
        { "/api/stores/0/features?hide_dead=maybe", "hide_dead 'maybe'", "bool" },
        { "/assets/..%2F..%2Fsecret.txt", "asset '..%2F..%2Fsecret.txt'", "path-like asset" },
        { "/api/jobs/..%2Fsecret", "job '..%2Fsecret'", "path-like job" },
        { "/stores/0/steer?features=..%2Fx", "feature '../x'", "steer page's feature" },
        { "/api/matches/0", "no match output", "no matches served" },
    };

    [ServedTheory]
    [MemberData(nameof(BadGets))]
    public async Task BadValuesInUrlsAre400sThatSayWhatIsWrong(string path, string message, string what)
    {
        using var r = await served.Get(path);
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{what}: {path} answered {(int)r.StatusCode} {body}");
        Assert.Contains(System.Net.WebUtility.HtmlEncode(message).Replace("&#39;", "'"), body.Replace("&#39;", "'"));
        Assert.DoesNotContain(ServedStories.Secret, body);
    }

    public static TheoryData<string, string, string> BadPosts() => new()
    {
        { "search", "{\"text\": \"\"}", "text is empty" },
        { "search", "{\"text\": 3}", "text: expected a string" },
        { "search", "{}", "text: expected a string" },
        { "search", "{\"text\": \"" + new string('a', 2001) + "\"}", "2001 characters; at most 2000 (max_prompt_chars)" },
        { "search", "{\"text\": \"" + string.Concat(Enumerable.Repeat(" the girl", 40)) + "\"}", "tokens; at most 64 (max_prompt_tokens)" },
        { "search", "{\"text\": \"hi\", \"top_k\": 0}", "top_k 0: expected 1 to 100" },
        { "search", "{\"text\": \"hi\", \"top_k\": \"lots\"}", "'top_k' = 'lots' is not a valid integer" },
        { "search", "{\"text\": \"hi\", \"path\": \"../secret.txt\"}", "unknown field 'path'" },
        { "search", "{\"text\": \"hi\", \"hook_name\": \"blocks.0.hook_resid_pre\"}", "unknown field 'hook_name'" },
        { "search", "{not json", "the request body is not valid JSON" },
        { "search", "[1, 2]", "the request body must be a JSON object" },
        { "steer", "{\"prompt\": \"Once\"}", "features: give at least one latent" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"48=2\"}", "latent 48 is not below d_sae 48" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=1000000\"}", "strength 1000000 is outside [-50, 50] (max_strength)" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=2\", \"strengths\": \"0,51\"}", "strengths: 51 is outside [-50, 50]" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=2\", \"strengths\": \"0,Infinity\"}", "'Infinity' is not a finite number" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=2\", \"strengths\": [0, 1, 2, 3, 4, 5, 6]}", "strengths: 7 given; at most 6" },
        { "steer", "{\"prompt\": \"Once\", \"features\": [{\"index\": -1}]}", "features[0].index: expected a non-negative integer" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=2\", \"max_tokens\": 500}", "max_tokens 500: expected 1 to 24" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=2\", \"mode\": \"../../x\"}", "setting 'mode' = '../../x' is not a valid" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=2\", \"top_p\": 0}", "top-p" },
        { "steer", "{\"prompt\": \"Once\", \"features\": \"3=2\", \"out_dir\": \"/tmp\"}", "unknown field 'out_dir'" },
    };

    [ServedTheory]
    [MemberData(nameof(BadPosts))]
    public async Task BadLiveRequestsAre400sBeforeAnythingIsQueued(string kind, string body, string message)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var r = await served.Http.PostAsync($"{served.Url}/api/stores/0/{kind}", content);
        var json = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal(400, (int)json["status"]!);
        Assert.Contains(message, (string)json["error"]!);
    }

    [ServedFact]
    public async Task UnknownThingsAre404sAndOversizedBodiesAreRefused()
    {
        using (var r = await served.Get("/api/jobs/0123456789abcdef0123456789abcdef")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await served.Get("/assets/nothing.js")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await served.Get("/no/such/page")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using var big = new StringContent("{\"text\": \"" + new string('a', (int)FeatureServer.MaxRequestBody) + "\"}", Encoding.UTF8, "application/json");
        using var post = await served.Http.PostAsync($"{served.Url}/api/stores/0/search", big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, post.StatusCode);
    }

    [ServedFact]
    public async Task NothingOutsideTheStoresIsReadAndTheStoreIsNotWritten()
    {
        byte[] before = File.ReadAllBytes(served.StorePath);
        var written = File.GetLastWriteTimeUtc(served.StorePath);
        // Every way a request could name the secret beside the store: none is answered with it.
        string[] attempts =
        [
            "/assets/../../secret.txt", "/assets/..%2F..%2Fsecret.txt", "/assets/%2e%2e%2fsecret.txt", "/stores/0/../../secret.txt",
            "/stores/..%2Fsecret.txt", "/stores/0/features/..%2F..%2Fsecret.txt", $"/stores/0/features?sort={Uri.EscapeDataString(served.SecretFile)}",
            "/secret.txt", "/stores/0/secret.txt", $"/api/stores/0/features/{Uri.EscapeDataString(served.SecretFile)}",
        ];
        foreach (var a in attempts)
        {
            using var r = await served.Get(a);
            string body = await r.Content.ReadAsStringAsync();
            Assert.DoesNotContain(ServedStories.Secret, body);
            Assert.True((int)r.StatusCode is 400 or 404, $"{a}: {(int)r.StatusCode}");
        }
        await served.GetJson("/api/stores/0/features/3");
        Assert.Equal(before, File.ReadAllBytes(served.StorePath));
        Assert.Equal(written, File.GetLastWriteTimeUtc(served.StorePath));
        Assert.Empty(Directory.GetFiles(served.StoreDir, "features.db-*")); // no journal, WAL or shared-memory file: opened read-only
    }
}
