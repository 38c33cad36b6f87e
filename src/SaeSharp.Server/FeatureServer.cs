using System.Net;
using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using SaeSharp.Reports;
using SaeSharp.Tensors;

namespace SaeSharp.Server;

/// <summary>
/// `saesharp serve`: the local feature browser. An ASP.NET Core app (Kestrel, minimal APIs) over the stores and match
/// outputs of <see cref="ServeCatalog"/>: HTML pages with a JSON endpoint behind each, figures as SVG, the scripts and
/// styles from the assembly, and live text search and steering through the <see cref="LiveWork"/> queue. Built on an
/// empty host: no configuration file, environment or content root is read.
/// </summary>
public sealed class FeatureServer : IAsyncDisposable
{
    /// <summary>Largest request body accepted (a prompt of max_prompt_chars fits many times over).</summary>
    public const long MaxRequestBody = 64 * 1024;
    private const string Html = "text/html; charset=utf-8";

    private readonly WebApplication _app;

    public ServeCatalog Catalog { get; }
    public LiveWork Work { get; }
    public ServeSettings Settings { get; }
    /// <summary>The address the server listens on, e.g. http://127.0.0.1:5151.</summary>
    public string Url { get; private set; } = "";

    private FeatureServer(WebApplication app, ServeCatalog catalog, LiveWork work, ServeSettings settings)
    {
        _app = app;
        Catalog = catalog;
        Work = work;
        Settings = settings;
    }

    /// <summary>
    /// Requests and the live jobs' kernels (Parallel.For) share the process's thread pool. It starts with one worker
    /// per core and grows slowly while every worker is busy with compute, so on a 2-core machine a page request could
    /// wait behind a running job for tens of seconds (a browser navigation timed out at 30 s in CI). Workers kept
    /// ready answer pages at once; the kernels still split work by their own Compute. Only ever raised.
    /// </summary>
    private static void KeepWorkersReady()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 4 * Environment.ProcessorCount + 8), Math.Max(io, 4 * Environment.ProcessorCount + 8));
    }

    /// <summary>Opens the stores and starts listening; the returned server runs until disposed.</summary>
    public static async Task<FeatureServer> StartAsync(ServeSettings settings, ServeInputs inputs, Compute compute, CancellationToken cancel = default)
    {
        settings.Validate();
        KeepWorkersReady();
        var catalog = ServeCatalog.Open(inputs, settings, compute);
        var work = new LiveWork(settings.MaxConcurrentJobs, settings.QueueLength, TimeSpan.FromSeconds(settings.JobTimeoutSeconds), settings.KeepJobs);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "SaeSharp.Server" });
        var address = settings.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(settings.Host);
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.Listen(address, settings.Port);
            k.Limits.MaxRequestBodySize = MaxRequestBody;
            k.AddServerHeader = false;
        });
        builder.Services.AddRoutingCore();
        var app = builder.Build();
        var server = new FeatureServer(app, catalog, work, settings);
        server.Map(app, new FigureCache(), Assets());
        try { await app.StartAsync(cancel); }
        catch
        {
            await app.DisposeAsync();
            work.Dispose();
            catalog.Dispose();
            throw;
        }
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
        server.Url = addresses?.FirstOrDefault() ?? $"http://{settings.Host}:{settings.Port}";
        return server;
    }

    /// <summary>The scripts and styles served under /assets: the embedded files and the report's dashboard styles.</summary>
    private static Dictionary<string, (string Type, byte[] Bytes)> Assets()
    {
        var asm = Assembly.GetExecutingAssembly();
        var assets = new Dictionary<string, (string, byte[])>(StringComparer.Ordinal)
        {
            ["dashboard.css"] = ("text/css; charset=utf-8", System.Text.Encoding.UTF8.GetBytes(FeatureReport.DashboardCss)),
        };
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith("assets/", StringComparison.Ordinal)))
        {
            using var stream = asm.GetManifestResourceStream(name)!;
            using var ms = new MemoryStream();
            stream.CopyTo(ms);
            string file = name["assets/".Length..];
            string type = file.EndsWith(".js", StringComparison.Ordinal) ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8";
            assets[file] = (type, ms.ToArray());
        }
        return assets;
    }

    private void Map(WebApplication app, FigureCache figures, Dictionary<string, (string Type, byte[] Bytes)> assets)
    {
        app.Use(Guard);
        var c = Catalog;
        var s = Settings;
        IResult Page(string html) => Results.Content(html, Html);
        IResult Data(object value) => Results.Json(value, Json.Options);
        IResult Svg(string svg) => Results.Text(svg, "image/svg+xml; charset=utf-8");

        // Pages.
        app.MapGet("/", () => Page(Pages.Overview(c)));
        app.MapGet("/stores/{store}", (string store) => Page(Pages.Store(c, Requests.Store(c, store))));
        app.MapGet("/stores/{store}/features", (string store, HttpRequest r) => Page(Pages.Features(c, Requests.Store(c, store), Requests.FeatureList(r.Query, s))));
        app.MapGet("/stores/{store}/features/{feature}", (string store, string feature) =>
        {
            var st = Requests.Store(c, store);
            return Page(Pages.Feature(c, st, Requests.Feature(st, feature)));
        });
        app.MapGet("/stores/{store}/search", (string store) => Page(Pages.Search(c, Requests.Store(c, store), s)));
        app.MapGet("/stores/{store}/steer", (string store, HttpRequest r) =>
        {
            var st = Requests.Store(c, store);
            string? features = r.Query["features"].ToString() is { Length: > 0 } f ? f : null;
            if (features is not null) Requests.Feature(st, features);
            return Page(Pages.Steer(c, st, s, features));
        });
        app.MapGet("/matches/{match}", (string match, HttpRequest r) =>
        {
            var m = Requests.Match(c, match);
            if (r.Query["latent"].ToString() is { Length: > 0 } latent) return Results.Redirect($"/matches/{m.Id}/latents/{Requests.ReferenceLatent(m, latent)}");
            return Page(Pages.Match(c, m));
        });
        app.MapGet("/matches/{match}/latents/{latent}", (string match, string latent) =>
        {
            var m = Requests.Match(c, match);
            return Page(Pages.MatchLatent(c, m, Requests.ReferenceLatent(m, latent)));
        });

        // Figures.
        app.MapGet("/stores/{store}/density.svg", (string store) => Svg(figures.Density(Requests.Store(c, store))));
        app.MapGet("/stores/{store}/features/{feature}/activations.svg", (string store, string feature) =>
        {
            var st = Requests.Store(c, store);
            return Svg(figures.ActivationHistogram(st, Requests.Feature(st, feature)));
        });

        // Scripts and styles, by name from the assembly.
        app.MapGet("/assets/{name}", (string name) =>
        {
            if (!System.Text.RegularExpressions.Regex.IsMatch(name, "^[a-z0-9-]{1,40}\\.(js|css)$"))
                throw new BadRequestException($"asset '{(name.Length > 40 ? name[..40] + "…" : name)}': expected a file name like app.js or style.css");
            return assets.TryGetValue(name, out var a) ? Results.Bytes(a.Bytes, a.Type) : throw new KeyNotFoundException($"no asset named {name}");
        });

        // JSON behind every page.
        app.MapGet("/api/stores", () => Data(new
        {
            Stores = c.Stores.Select(st => Views.Store(c, st)).ToArray(),
            Matches = c.Matches.Select(MatchSummary).ToArray(),
        }));
        app.MapGet("/api/stores/{store}", (string store) => Data(Views.Store(c, Requests.Store(c, store))));
        app.MapGet("/api/stores/{store}/features", (string store, HttpRequest r) => Data(Views.Features(Requests.Store(c, store), Requests.FeatureList(r.Query, s))));
        app.MapGet("/api/stores/{store}/features/{feature}", (string store, string feature) =>
        {
            var st = Requests.Store(c, store);
            return Data(Views.Feature(c, st, Requests.Feature(st, feature)));
        });
        app.MapGet("/api/matches/{match}", (string match) => Data(MatchSummary(Requests.Match(c, match))));
        app.MapGet("/api/matches/{match}/latents/{latent}", (string match, string latent) =>
        {
            var m = Requests.Match(c, match);
            return Data(Views.MatchLatent(c, m, Requests.ReferenceLatent(m, latent)));
        });

        // Live work: submit, then poll (or long-poll with wait_ms) the job.
        app.MapPost("/api/stores/{store}/search", async (string store, HttpRequest r) =>
        {
            var st = Requests.Store(c, store);
            var req = Requests.Search(await Requests.Body(r), st, s);
            return Submitted(Work.Submit("search", st.Id, job => LiveJobs.Search(st, req, job)));
        });
        app.MapPost("/api/stores/{store}/steer", async (string store, HttpRequest r) =>
        {
            var st = Requests.Store(c, store);
            var req = Requests.Steer(await Requests.Body(r), st, s);
            return Submitted(Work.Submit("steer", st.Id, job => LiveJobs.Steer(st, req, job)));
        });
        app.MapGet("/api/jobs/{id}", async (string id, HttpRequest r, CancellationToken cancel) =>
        {
            var job = Requests.Job(Work, id);
            int waitMs = Requests.Int(r.Query, "wait_ms", 0, 0, 30_000);
            long since = Requests.Int(r.Query, "since", -1, -1, int.MaxValue);
            if (waitMs > 0) await job.WaitForChange(since < 0 ? job.Version : since, TimeSpan.FromMilliseconds(waitMs), cancel);
            return Data(JobView(job));
        });
        app.MapGet("/api/health", () => Data(new { Stores = c.Stores.Count, Matches = c.Matches.Count, Jobs = new { Work.Running, Work.Waiting, Work.Concurrency } }));

        app.MapFallback((HttpRequest r) => { throw new KeyNotFoundException($"nothing at {r.Path}"); });
    }

    private IResult Submitted(LiveJob job) => Results.Json(JobView(job), Json.Options, statusCode: 202);

    private object JobView(LiveJob j) => new
    {
        j.Id, j.Kind, Store = j.StoreId, State = j.State, j.Progress, j.Message, j.Version, Waiting = Work.Waiting, Url = $"/api/jobs/{j.Id}", j.Result, j.Error,
    };

    private static object MatchSummary(MatchOutput m) => new
    {
        m.Id, m.Name, m.Folder, m.MatchedBy, m.DistanceThreshold, m.ReferenceColumn, m.ReferenceLatents, m.Checkpoints,
    };

    /// <summary>
    /// Every response's headers (nothing outside this server may be fetched: the content security policy would turn
    /// any outside reference into a console error), and bad requests answered with their message: 400 for a bad value,
    /// 404 for an unknown job or asset, 503 when the live queue is full; JSON under /api, a page elsewhere.
    /// </summary>
    private async Task Guard(HttpContext ctx, RequestDelegate next)
    {
        SecurityHeaders(ctx);
        try { await next(ctx); }
        catch (BadRequestException e) { await Problem(ctx, 400, e.Message); }
        catch (KeyNotFoundException e) { await Problem(ctx, 404, e.Message); }
        catch (QueueFullException e) { await Problem(ctx, 503, e.Message); }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e) { await Problem(ctx, e.StatusCode, e.Message); }
    }

    private static void SecurityHeaders(HttpContext ctx)
    {
        var h = ctx.Response.Headers;
        h.XContentTypeOptions = "nosniff";
        h.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
        h.CacheControl = "no-store";
    }

    private async Task Problem(HttpContext ctx, int status, string message)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.Clear();
        ctx.Response.StatusCode = status;
        SecurityHeaders(ctx);
        if (ctx.Request.Path.StartsWithSegments("/api"))
            await ctx.Response.WriteAsJsonAsync(new JsonObject { ["status"] = status, ["error"] = message }, Json.Options);
        else
        {
            ctx.Response.ContentType = Html;
            await ctx.Response.WriteAsync(Pages.Error(Catalog, status, message));
        }
    }

    /// <summary>Runs until <paramref name="cancel"/> fires (Ctrl+C in the CLI).</summary>
    public async Task RunUntil(CancellationToken cancel)
    {
        try { await Task.Delay(Timeout.Infinite, cancel); }
        catch (OperationCanceledException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Work.Dispose();
        Catalog.Dispose();
    }
}
