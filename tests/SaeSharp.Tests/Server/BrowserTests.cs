using Microsoft.Playwright;
using SaeSharp.Analysis;
using SaeSharp.Reports;
using SaeSharp.Runs;
using SaeSharp.Tests.Reports;

namespace SaeSharp.Tests.Server;

/// <summary>
/// One headless Debian chromium (Microsoft.Playwright with ExecutablePath; no browser download) for the browser
/// tests, and pages that record every console error, page error, failed request and error response.
/// </summary>
public sealed class BrowserSession : IAsyncLifetime
{
    private IPlaywright? _playwright;
    private IBrowser? _browser;

    /// <summary>Where the tests leave their screenshots (beside the test binary).</summary>
    public static string Screenshots { get; } = Path.Combine(AppContext.BaseDirectory, "screenshots", "serve");

    public async Task InitializeAsync()
    {
        if (ChromiumFactAttribute.Path is null || SharedData.MissingOf(ServedStories.Needs) is not null) return; // the tests skip, or fail under CI
        Directory.CreateDirectory(Screenshots);
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumFactAttribute.Path, Headless = true, Args = ["--disable-gpu", "--disable-dev-shm-usage"],
        });
    }

    /// <summary>A fresh page (1280 wide) and the list its errors go to.</summary>
    public async Task<(IPage Page, List<string> Errors)> NewPage()
    {
        var browser = _browser ?? throw new InvalidOperationException("chromium was not started (is /usr/bin/chromium installed?)");
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        // A 2-core CI machine runs other test classes beside these; give a step a minute rather than Playwright's 30 s.
        page.SetDefaultTimeout(60_000);
        var errors = new List<string>();
        page.Console += (_, m) => { if (m.Type == "error") lock (errors) errors.Add("console: " + m.Text); };
        page.PageError += (_, e) => { lock (errors) errors.Add("page error: " + e); };
        page.RequestFailed += (_, r) => { lock (errors) errors.Add($"request failed: {r.Url} {r.Failure}"); };
        page.Response += (_, r) => { if (r.Status >= 400) lock (errors) errors.Add($"HTTP {r.Status}: {r.Url}"); };
        return (page, errors);
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        _playwright?.Dispose();
    }
}

/// <summary>
/// The served stories store in a real browser: the overview, a feature page and its examples, a live text search and
/// a steering comparison, each saved as a screenshot; any console error fails the test.
/// </summary>
[Collection(ServedStoriesCollection.Name)]
public sealed class BrowserTests(ServedStories served, BrowserSession browser) : IClassFixture<BrowserSession>
{
    private static void NoErrors(List<string> errors)
    {
        lock (errors) Assert.True(errors.Count == 0, "the page reported errors:\n" + string.Join("\n", errors));
    }

    private static Task Shot(IPage page, string name) =>
        page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserSession.Screenshots, name + ".png"), FullPage = true });

    private static int Densest(ServedStories served)
    {
        using var reader = FeatureStore.Open(served.StorePath);
        return reader.Page("density", true, 0, 1)[0].Feature;
    }

    [BrowserFact]
    public async Task TheOverviewShowsTheStoreAndItsDensityHistogram()
    {
        var (page, errors) = await browser.NewPage();
        await page.GotoAsync(served.Url + "/", new PageGotoOptions { WaitUntil = WaitUntilState.NetworkIdle });
        using var reader = FeatureStore.Open(served.StorePath);
        Assert.Contains(reader.Summary.SaeName, await page.InnerTextAsync("#stores"));
        Assert.True(await page.EvaluateAsync<int>("document.querySelector('img[alt^=\"feature density\"]').naturalWidth") > 0, "the density figure did not load");
        await Shot(page, "overview");
        await page.ClickAsync("#stores a");
        await page.WaitForURLAsync("**/stores/0");
        Assert.Contains("l0", await page.InnerTextAsync("#metrics"));
        await Shot(page, "store");
        NoErrors(errors);
        await page.CloseAsync();
    }

    [BrowserFact]
    public async Task AFeaturePageShowsItsTopExamplesWithTheirActivations()
    {
        int j = Densest(served);
        FeatureDetail detail;
        using (var reader = FeatureStore.Open(served.StorePath)) detail = reader.Detail(j);
        var (page, errors) = await browser.NewPage();
        await page.GotoAsync($"{served.Url}/stores/0/features/{j}", new PageGotoOptions { WaitUntil = WaitUntilState.NetworkIdle });
        var examples = page.Locator("#top-examples .ex");
        Assert.Equal(detail.TopExamples.Count, await examples.CountAsync());
        var top = detail.TopExamples[0];
        var center = examples.First.Locator(".tok.center");
        Assert.Equal(FeatureReport.Visible(top.Tokens[top.Center]).Trim(), (await center.InnerTextAsync()).Trim());
        Assert.Equal($"{top.Tokens[top.Center]}: {top.Acts[top.Center].ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}", await center.GetAttributeAsync("title"));
        Assert.Equal(detail.TopExamples[0].Tokens.Length, await examples.First.Locator(".tok").CountAsync());
        Assert.Equal(detail.TopLogits.Count, await page.Locator("table.logit.pos td.tokname").CountAsync());
        Assert.True(await page.EvaluateAsync<int>("document.querySelector('img[alt=\"activation histogram\"]').naturalWidth") > 0, "the histogram did not load");
        await center.HoverAsync();
        await Shot(page, "feature");
        NoErrors(errors);
        await page.CloseAsync();
    }

    private const string Text = "Once upon a time, there was a little girl named Lily. She loved to play outside.";

    [BrowserFact]
    public async Task ATextSearchRunsLiveAndLeadsToTheFeaturePages()
    {
        var direct = PromptFeaturesRun.Search(served.Steering(), Text, new PromptFeaturesSettings { TopK = 8 });
        var (page, errors) = await browser.NewPage();
        await page.GotoAsync(served.Url + "/stores/0/search");
        await page.FillAsync("#search-form textarea", Text);
        await page.FillAsync("#search-form input[name=top_k]", "8");
        await page.ClickAsync("#search-run");
        var rows = page.Locator("#search-table tr[data-index]");
        await rows.First.WaitForAsync();
        Assert.Equal(direct.Features.Count, await rows.CountAsync());
        Assert.Equal(direct.Features.Select(f => f.Activation.FeatureIdx.ToString()), await page.Locator("#search-table tr[data-index] td:first-child").AllInnerTextsAsync());
        Assert.Equal(direct.Tokens.Length, await page.Locator("#search-tokens .tok").CountAsync());
        Assert.Equal("done", await page.InnerTextAsync("#status"));
        // Clicking a row shades the text by that latent.
        await rows.Nth(1).Locator("td").Nth(1).ClickAsync();
        Assert.Contains("selected", await rows.Nth(1).GetAttributeAsync("class") ?? "");
        Assert.Equal($"latent {direct.Features[1].Activation.FeatureIdx}", await page.InnerTextAsync("#search-tokens .latent"));
        await Shot(page, "search");
        await rows.First.Locator("a").ClickAsync();
        await page.WaitForURLAsync($"**/stores/0/features/{direct.Features[0].Activation.FeatureIdx}");
        NoErrors(errors);
        await page.CloseAsync();
    }

    [BrowserFact]
    public async Task ASteeringComparisonShowsBaselineAndSteeredSideBySide()
    {
        var settings = new SteerSettings { Features = "3=4", Strengths = "0,2", MaxTokens = 12, Seed = 7 };
        var direct = SteerRun.Compare(served.Steering(settings), settings, "Once upon a time");
        var (page, errors) = await browser.NewPage();
        await page.GotoAsync(served.Url + "/stores/0/steer?features=3");
        Assert.Equal("3=4", await page.InputValueAsync("input[name=features]"));
        await page.FillAsync("#steer-form textarea", "Once upon a time");
        await page.FillAsync("input[name=strengths]", "0,2");
        await page.FillAsync("input[name=max_tokens]", "12");
        await page.FillAsync("input[name=seed]", "7");
        await page.ClickAsync("#steer-run");
        var runs = page.Locator("#steer-results .run");
        await runs.Nth(1).WaitForAsync();
        Assert.Equal(["baseline", "strength_2.0"], await runs.EvaluateAllAsync<string[]>("rs => rs.map(r => r.dataset.label)"));
        Assert.Equal(direct.Runs.Select(r => r.Text), await page.Locator("#steer-results .run .text").AllTextContentsAsync());
        Assert.Contains("the unsteered model", await runs.First.InnerTextAsync());
        Assert.Contains("KL per generated token: mean", await runs.Nth(1).InnerTextAsync());
        await Shot(page, "steer");
        NoErrors(errors);
        await page.CloseAsync();
    }

    [BrowserFact]
    public async Task ErrorsReachThePageAndTheErrorCheckCatchesThem()
    {
        var (page, errors) = await browser.NewPage();
        var response = await page.GotoAsync($"{served.Url}/stores/0/features/4800");
        Assert.Equal(400, response!.Status);
        Assert.Contains("feature '4800': expected a latent index from 0 to 47", await page.InnerTextAsync("#error"));
        await page.GotoAsync(served.Url + "/stores/0/steer?features=3");
        await page.FillAsync("input[name=strengths]", "0,1000");
        await page.ClickAsync("#steer-run");
        await page.Locator("#error:not(:empty)").WaitForAsync();
        Assert.Contains("strengths: 1000 is outside [-50, 50] (max_strength)", await page.InnerTextAsync("#error"));
        await page.EvaluateAsync("console.error('planted')");
        await page.WaitForFunctionAsync("true");
        lock (errors)
        {
            Assert.Contains(errors, e => e.StartsWith("HTTP 400:") && e.EndsWith("/stores/0/features/4800"));
            Assert.Contains(errors, e => e.StartsWith("HTTP 400:") && e.EndsWith("/api/stores/0/steer"));
            Assert.Contains("console: planted", errors);
        }
        await page.CloseAsync();
    }
}
