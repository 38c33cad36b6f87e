using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Data;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Server;
using SaeSharp.Tensors;
using SaeSharp.Training;

namespace SaeSharp.Bench;

/// <summary>
/// `saesharp bench serve`: a bounded loopback load on the feature browser. <c>clients</c> concurrent clients (32 by
/// default) for <c>seconds</c> (20) each loop over feature pages (HTML and JSON, random latents) and live text
/// searches (submitted, then long-polled to the result) against a server on 127.0.0.1; requests/s and p50/p99
/// latency per kind, and the errors (there must be none). Reference, measured in the same run: the same feature page
/// rendered and the same search run in-process on one thread, with no HTTP. Without --store it serves a 512-latent
/// top-k SAE on stories260K analysed over 16k tokens of TinyStories, built in a temp folder.
/// </summary>
public static class ServeBench
{
    private static readonly string[] Texts =
    [
        "Once upon a time, there was a little girl named Lily.",
        "The dog ran to the park and played with a big red ball.",
        "Tom was sad because his toy was broken, so his mom helped him fix it.",
        "One day, a bird flew over the tall tree and sang a happy song.",
    ];

    public static int Run(TextWriter o, string? storeDir, string modelPath, string dataset, int clients, double seconds, bool quick)
    {
        if (quick) { clients = Math.Min(clients, 8); seconds = Math.Min(seconds, 3); }
        if (clients < 1 || !(seconds > 0)) throw new ArgumentException("--clients and --seconds must be positive");
        var compute = Compute.All;
        string? temp = null;
        try
        {
            if (storeDir is null)
            {
                temp = Directory.CreateTempSubdirectory("saesharp-bench-serve").FullName;
                storeDir = BuildStore(temp, modelPath, dataset, quick ? 4096 : 16_384, compute);
            }
            return Load(o, storeDir, clients, seconds, compute).GetAwaiter().GetResult();
        }
        finally
        {
            if (temp is not null) Directory.Delete(temp, recursive: true);
        }
    }

    private static string BuildStore(string dir, string modelPath, string dataset, long tokens, Compute compute)
    {
        const string Hook = "blocks.2.hook_resid_post";
        var model = SaeSharp.Models.HookedTransformer.Load(modelPath, compute);
        var sae = SaeRegistry.Create(new SaeConfig { Architecture = "topk", DIn = ActivationStore.Width(model, Hook), DSae = 512, K = 8, Metadata = new JsonObject { ["hook_name"] = Hook } }, compute);
        SaeTrainable.Initialize(sae, new Rng(1));
        string saeDir = Path.Combine(dir, "sae"), storeDir = Path.Combine(dir, "analysis");
        SaeFiles.Save(sae, saeDir);
        var settings = new AnalyzeSettings { Tokens = tokens, Contexts = new ContextSettings { ContextSize = 128 }, Report = new ReportSettings { ReportFeatures = 0, Figures = false } };
        AnalyzeRun.Execute(settings, new AnalyzeInputs { SaeDir = saeDir, ModelPath = modelPath, Dataset = dataset }, storeDir, overwrite: false, TextReporter.Silent, compute);
        return storeDir;
    }

    private sealed class Kind(string name)
    {
        public string Name { get; } = name;
        public List<double> Ms { get; } = [];
        public int Errors;
        public string? FirstError;
    }

    private static async Task<int> Load(TextWriter o, string storeDir, int clients, double seconds, Compute compute)
    {
        var settings = new ServeSettings { Port = 0, QueueLength = Math.Max(64, 2 * clients), JobTimeoutSeconds = 60 };
        await using var server = await FeatureServer.StartAsync(settings, new ServeInputs { Stores = [storeDir] }, compute);
        var store = server.Catalog.Stores[0];
        int dSae = store.DSae;
        o.WriteLine($"serve benchmark: {store.Name} ({store.Summary.Architecture}, d_sae {dSae}) at {server.Url}, {clients} clients for {seconds:G} s; " +
                    $"CPU {CacheInfo.Machine.CpuModel}, {Environment.ProcessorCount} threads, live jobs {settings.MaxConcurrentJobs} at a time");
        if (store.Live is null) throw new InvalidOperationException($"the store has no live model: {store.LiveUnavailable}");

        // Reference: one feature page rendered and one search run in-process, one at a time, no HTTP.
        var rng = new Rng(3);
        double pageRef = Median(200, () => Pages.Feature(server.Catalog, store, rng.NextInt(dSae)));
        var direct = new SaeSteering(LoadedModel(store), LoadedSae(store), store.Live.Tokenizer);
        double searchRef = Median(20, () => PromptFeaturesRun.Search(direct, Texts[rng.NextInt(Texts.Length)], new PromptFeaturesSettings()));

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients, PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = TimeSpan.FromSeconds(120) };
        var html = new Kind("feature page (HTML)");
        var json = new Kind("feature JSON");
        var search = new Kind("text search (submit to result)");
        // Warm up every path once (JIT, figure and model loading) before the clock starts.
        await http.GetStringAsync($"{server.Url}/stores/0/features/0");
        await http.GetStringAsync($"{server.Url}/api/stores/0/features/0");
        await Search(http, server.Url, Texts[0]);

        var clock = Stopwatch.StartNew();
        var deadline = TimeSpan.FromSeconds(seconds);
        const int MaxRequestsPerClient = 200_000; // a bound on the loop besides the clock
        var tasks = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var r = new Rng((ulong)(100 + c));
            for (int i = 0; i < MaxRequestsPerClient && clock.Elapsed < deadline; i++)
            {
                var kind = ((i + c) % 4) switch { 0 => search, 1 => json, _ => html };
                var t = Stopwatch.StartNew();
                string? error = null;
                try
                {
                    if (kind == search) error = await Search(http, server.Url, Texts[r.NextInt(Texts.Length)]);
                    else
                    {
                        string url = kind == html ? $"{server.Url}/stores/0/features/{r.NextInt(dSae)}" : $"{server.Url}/api/stores/0/features/{r.NextInt(dSae)}";
                        using var resp = await http.GetAsync(url);
                        await resp.Content.ReadAsByteArrayAsync();
                        if (!resp.IsSuccessStatusCode) error = $"{url}: HTTP {(int)resp.StatusCode}";
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { error = e.Message; }
                double ms = t.Elapsed.TotalMilliseconds;
                lock (kind)
                {
                    kind.Ms.Add(ms);
                    if (error is not null) { kind.Errors++; kind.FirstError ??= error; }
                }
            }
        })).ToArray();
        await Task.WhenAll(tasks);
        double elapsed = clock.Elapsed.TotalSeconds;

        var kinds = new[] { html, json, search };
        int total = kinds.Sum(k => k.Ms.Count), errors = kinds.Sum(k => k.Errors);
        o.WriteLine($"  {"kind",-32}{"requests",10}{"req/s",10}{"p50 ms",10}{"p99 ms",10}{"errors",8}");
        foreach (var k in kinds)
            o.WriteLine($"  {k.Name,-32}{k.Ms.Count,10:N0}{k.Ms.Count / elapsed,10:F1}{Percentile(k.Ms, 0.5),10:F2}{Percentile(k.Ms, 0.99),10:F2}{k.Errors,8}");
        var all = kinds.SelectMany(k => k.Ms).ToList();
        o.WriteLine($"  {"all",-32}{total,10:N0}{total / elapsed,10:F1}{Percentile(all, 0.5),10:F2}{Percentile(all, 0.99),10:F2}{errors,8}");
        o.WriteLine($"  reference (in-process, one thread): feature page {pageRef:F3} ms, search {searchRef:F3} ms; " +
                    $"p50 under load / reference: feature page {Percentile(html.Ms, 0.5) / pageRef:F1}, search {Percentile(search.Ms, 0.5) / searchRef:F1}");
        foreach (var k in kinds.Where(k => k.FirstError is not null)) o.WriteLine($"  first {k.Name} error: {k.FirstError}");
        o.WriteLine(errors == 0 ? "  no errors" : $"  {errors} errors");
        return errors == 0 ? 0 : 1;
    }

    /// <summary>One live search over HTTP: submitted, then long-polled until it finishes; null when it succeeded, else what went wrong.</summary>
    private static async Task<string?> Search(HttpClient http, string url, string text)
    {
        using var submit = await http.PostAsJsonAsync($"{url}/api/stores/0/search", new { text, top_k = 20 });
        var job = JsonNode.Parse(await submit.Content.ReadAsStringAsync())!;
        if ((int)submit.StatusCode != 202) return $"search: HTTP {(int)submit.StatusCode}: {job["error"]}";
        while ((string)job["state"]! is "queued" or "running")
        {
            using var poll = await http.GetAsync($"{url}{(string)job["url"]!}?since={(long)job["version"]!}&wait_ms=10000");
            job = JsonNode.Parse(await poll.Content.ReadAsStringAsync())!;
            if (!poll.IsSuccessStatusCode) return $"job: HTTP {(int)poll.StatusCode}: {job["error"]}";
        }
        return (string)job["state"]! == "done" ? null : $"search {(string)job["state"]!}: {job["error"]}";
    }

    private static SaeSharp.Models.HookedTransformer LoadedModel(ServedStore s) => s.Live!.Use(() => { }, (m, _, _) => m);
    private static SaeSharp.Evals.HookedSae LoadedSae(ServedStore s) => s.Live!.Use(() => { }, (_, sae, _) => sae);

    private static double Median(int n, Action action)
    {
        action();
        var ms = new List<double>(n);
        for (int i = 0; i < n; i++)
        {
            var t = Stopwatch.StartNew();
            action();
            ms.Add(t.Elapsed.TotalMilliseconds);
        }
        return Percentile(ms, 0.5);
    }

    private static double Percentile(List<double> values, double q)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
