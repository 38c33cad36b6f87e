using System.Net.Http.Json;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Data;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Server;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Server;

/// <summary>
/// A feature store of a 48-latent top-k SAE on stories260K (analysed over 1,024 tokens of TinyStories, with an
/// eval.json beside it), served once on a free loopback port for every test of the "served stories" collection. A
/// file with a secret stands beside the store's folder: nothing the server answers may ever contain it.
/// </summary>
public sealed class ServedStories : IAsyncLifetime
{
    public const string Hook = "blocks.2.hook_resid_post";
    public static readonly string[] Needs = [StoriesWeights, StoriesTokenizer, Corpus];
    public const string Secret = "secret-4f1c9a-not-for-the-browser";

    private readonly TempDir _dir = new();
    private FeatureServer? _server;

    public string Root => _dir.Root;
    public string SaeDir => _dir.File("sae");
    public string StoreDir => _dir.File("analysis");
    public string StorePath => Path.Combine(StoreDir, FeatureStore.FileName);
    public string SecretFile => _dir.File("secret.txt");
    public FeatureServer Server => _server ?? throw new InvalidOperationException("the served store was not built: " + SharedData.MissingOf(Needs));
    public string Url => Server.Url;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromMinutes(2) };
    public ServeSettings Settings { get; } = new() { Port = 0, MaxPromptTokens = 64, MaxNewTokens = 24, MaxStrength = 50, JobTimeoutSeconds = 120 };

    public async Task InitializeAsync()
    {
        if (SharedData.MissingOf(Needs) is not null) return; // the tests skip (or fail under SAESHARP_REQUIRE_SHARED)
        var m = LoadStories();
        SaeFiles.Save(Random("topk", m.Config.DModel, Metadata(Hook), dSae: 48), SaeDir);
        var contexts = new ContextSettings { ContextSize = 64, StoreBatchSizePrompts = 4 };
        var settings = new AnalyzeSettings { Tokens = 1024, Contexts = contexts, Report = new ReportSettings { ReportFeatures = 1, Figures = false } };
        var inputs = new AnalyzeInputs { SaeDir = SaeDir, ModelPath = SharedData.Path(Stories), Dataset = SharedData.Path(Corpus) };
        AnalyzeRun.Execute(settings, inputs, StoreDir, overwrite: false, TextReporter.Silent, Compute.All);
        EvalRun.Execute(new EvalSettings { Tokens = 512, Contexts = contexts }, SharedData.Path(Stories), [SaeDir], SharedData.Path(Corpus), null, StoreDir,
            TextReporter.Silent, Compute.All);
        File.WriteAllText(SecretFile, Secret);
        _server = await FeatureServer.StartAsync(Settings, new ServeInputs { Stores = [StoreDir] }, Compute.All);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        Http.Dispose();
        _dir.Dispose();
    }

    public Task<HttpResponseMessage> Get(string path) => Http.GetAsync(Url + path);

    public async Task<JsonNode> GetJson(string path)
    {
        using var r = await Get(path);
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"GET {path}: {(int)r.StatusCode} {body}");
        return JsonNode.Parse(body)!;
    }

    /// <summary>Submits a live job and waits (long-polling) until it finishes; returns the finished job.</summary>
    public async Task<JsonNode> RunJob(string path, object body)
    {
        using var r = await Http.PostAsJsonAsync(Url + path, body);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True((int)r.StatusCode == 202, $"POST {path}: {(int)r.StatusCode} {text}");
        var job = JsonNode.Parse(text)!;
        while ((string)job["state"]! is "queued" or "running")
            job = await GetJson($"{(string)job["url"]!}?since={(long)job["version"]!}&wait_ms=5000");
        return job;
    }

    /// <summary>The library's own steering object over the served SAE: what the live pages must agree with.</summary>
    public SaeSteering Steering(SteerSettings? s = null) => SteerRun.Open(SharedData.Path(Stories), SaeDir, null, null, Compute.All, s);
}

/// <summary>
/// The served store's tests (the server's and the browser's) run by themselves, after the parallel collections: in a
/// full run on 2 cores, where other classes' kernels hold both, a browser test's Playwright wait failed once in six
/// runs; run without them (even beside a benchmark) they passed twelve times in twelve.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServedStoriesCollection : ICollectionFixture<ServedStories>
{
    public const string Name = "served stories";
}

/// <summary>A fact over the served stories store: skipped when the shared stories260K files are missing (unless required).</summary>
public sealed class ServedFactAttribute : FactAttribute
{
    public ServedFactAttribute() => Skip = SkipReason(browser: false);

    /// <summary>Why a served-stories test cannot run here (null when it can): shared files missing, or chromium for a browser test.</summary>
    public static string? SkipReason(bool browser)
    {
        if (SharedData.MissingOf(ServedStories.Needs) is { } missing && !SharedData.Required) return $"reference data missing: {missing}";
        if (browser && Reports.ChromiumFactAttribute.Path is null && Environment.GetEnvironmentVariable("CI") != "true") return "chromium is not installed (apt-get install chromium)";
        return null;
    }
}

/// <summary>A theory over the served stories store (see <see cref="ServedFactAttribute"/>).</summary>
public sealed class ServedTheoryAttribute : TheoryAttribute
{
    public ServedTheoryAttribute() => Skip = ServedFactAttribute.SkipReason(browser: false);
}

/// <summary>A browser fact: needs the served stories store and Debian's chromium (installed by .ci/run under CI).</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute() => Skip = ServedFactAttribute.SkipReason(browser: true);
}
