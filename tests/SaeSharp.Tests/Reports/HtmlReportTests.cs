using System.Diagnostics;
using SaeSharp.Reports;
using SaeSharp.Runs;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using SaeSharp.Tests.Training;
using SkiaSharp;
using static SaeSharp.Tests.Reports.ReportFixtures;

namespace SaeSharp.Tests.Reports;

/// <summary>A fact that needs Debian's chromium: skipped when it is missing, except under CI (where .ci/run installs it).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public static string? Path { get; } = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);

    public ChromiumFactAttribute()
    {
        if (Path is null && Environment.GetEnvironmentVariable("CI") != "true") Skip = "chromium is not installed (apt-get install chromium)";
    }
}

/// <summary>The HTML reports: escaped, self-contained, sortable, token highlighting, and rendered by a real browser.</summary>
public class HtmlReportTests
{
    [Fact]
    public void FeatureReportShowsEveryPartOfADashboard()
    {
        var a = SmallAnalysis();
        string html = FeatureReport.Build(a, [4, 2]).Render();
        Assert.Contains("<h1>SaeSharp feature analysis: fixture</h1>", html);
        Assert.Contains("id=\"feature-4\"", html);
        Assert.Contains("<a href=\"#feature-2\">2</a>", html);
        Assert.DoesNotContain("id=\"feature-3\"", html);
        Assert.Contains("table id=\"features\" class=\"sortable\"", html);
        Assert.Equal(a.Features.Count, html.Split("<tr><td data-v=").Length - 1); // one table row per latent
        // Tokens: escaped, shaded by activation with the value on hover, the example's own token outlined, newlines visible.
        Assert.Contains("title=\" a: 4.0000\">", html);
        Assert.Contains("class=\"tok center\"", html);
        Assert.Contains("&lt;b&gt;", html);
        Assert.Contains(">↵</span>", html);
        Assert.Contains("Interval 2.000 – 4.000", html);
        Assert.Contains("&lt;&amp;&gt;", html); // a logit token
        Assert.Contains("<svg", html);
        Assert.DoesNotContain("<?xml", html);
        Assert.DoesNotContain("<script src", html);
    }

    [Fact]
    public void TrainingReportHasTheCurvesTheMetadataAndTheSettings()
    {
        using var dir = new TempDir();
        var s = new TrainSettings { Architecture = "topk", DSae = 16, K = 2, Steps = 20, BatchSize = 32, MetricsEvery = 5 };
        TrainRun.Execute(s, TrainData.FromArray(SparseDictionaryData.Sample(800, 1), 3), dir.Root, Compute.All);
        string html = File.ReadAllText(Path.Combine(dir.Root, TrainingReport.FileName)); // written by every training run
        Assert.Contains("Training curves", html);
        Assert.Contains("Loss (log scale)", html);
        Assert.Contains("final_explained_variance", html);
        Assert.Contains("<td>d_sae</td><td>16</td>", html);
        var r = ReportRun.FromTrainingRun(dir.Root, TextReporter.Silent);
        Assert.Equal((900, 5 * 230), PngSize(File.ReadAllBytes(r.Figures[0] + ".png")));
    }

    [Fact]
    public void InlinedFiguresKeepTheirOwnImages()
    {
        // Skia names the images and clip paths of every SVG img_0, cl_N, ...: inlined twice, the second heatmap would
        // draw the first one's cells. Every id is unique in the page and every reference points inside its own figure.
        var a = Figures.Heatmap(SaeSharp.Tensors.Tensor.FromArray([0, 1, 1, 0], 2, 2), "a", "a", "x", "y");
        var b = Figures.Heatmap(SaeSharp.Tensors.Tensor.FromArray([1, 1, 1, 0], 2, 2), "b", "b", "x", "y");
        string html = new HtmlReport("two").Figure(a).Figure(b).Render();
        var figures = html.Split("<div class=\"fig\">")[1..];
        Assert.Equal(2, figures.Length);
        var ids = System.Text.RegularExpressions.Regex.Matches(html, "\\bid=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Contains(ids, id => id.EndsWith("img_0", StringComparison.Ordinal));
        Assert.Equal(ids.Count, ids.Distinct().Count());
        foreach (var fig in figures)
        {
            var own = System.Text.RegularExpressions.Regex.Matches(fig, "\\bid=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToHashSet();
            var refs = System.Text.RegularExpressions.Regex.Matches(fig, "(?:href=\"#|url\\(#)([^\")]+)").Select(m => m.Groups[1].Value).ToList();
            Assert.NotEmpty(refs);
            Assert.All(refs, r => Assert.Contains(r, own));
        }
    }

    [Fact]
    public void MatchReportPlacesEachCheckpointsDashboardSideBySide()
    {
        var a = SmallAnalysis();
        var followed = new MatchedFeatureView(7, "appears at step8",
        [
            new MatchedFeatureStep("step0", -1, double.NaN, double.NaN, null),
            new MatchedFeatureStep("step8", 4, 0.25, 0.5, a[4]),
            new MatchedFeatureStep("final", 7, 0, 1, a[2]),
        ]);
        var figure = MatchFigures.FractionMatched(["8", "final"], [0.5], [[0.25, 1]]);
        var data = new MatchReportData
        {
            Title = "Matched <features>", Summary = ["tokens & more"], TableHeader = ["checkpoint", "matched"], TableRows = [["step8", "3"]],
            Figures = [(figure, "Fraction matched per threshold")], Features = [followed], TopExamples = 2,
        };
        string html = MatchReport.Build(data).Render();
        Assert.Contains("<h1>Matched &lt;features&gt;</h1>", html);
        Assert.Contains("<p>tokens &amp; more</p>", html);
        Assert.Contains("Fraction matched per threshold</p>", html); // the caption under its figure
        Assert.Contains("Reference latent 7: appears at step8", html);
        Assert.Contains("<td>latent</td><td>—</td><td>4</td><td>7</td>", html);
        Assert.Contains("<td>distance</td><td>—</td><td>0.250</td><td>0.000</td>", html);
        Assert.Contains("step0: no partner", html);
        // One dashboard per partner, in one row, each with its top activations.
        int row = html.IndexOf("<div class=\"side\">", StringComparison.Ordinal);
        Assert.True(row > 0);
        int first = html.IndexOf("step8 · latent 4: activation distribution", StringComparison.Ordinal), second = html.IndexOf("final · latent 7: activation distribution", StringComparison.Ordinal);
        Assert.True(row < first && first < second, "the dashboards follow the checkpoints inside the row");
        Assert.Contains("Top activations of latent 4 at step8", html);
        Assert.Equal(2 * 2, html.Split("<div class=\"ex\">").Length - 1); // two examples under each dashboard
        Assert.Equal(3, html.Split("<svg").Length - 1); // the figure and two dashboards, inline
        Assert.Null(MatchReport.Dashboard(followed, followed.Steps[0]));
        var d = MatchReport.Dashboard(followed, followed.Steps[1])!;
        Assert.Equal(("feature_7_step8", 560, 1480), (d.Name, d.Width, d.Height));
        Assert.Equal(4, d.Plots.Count);
    }

    [ChromiumFact]
    public void ChromiumRendersTheReportAsANonBlankPage()
    {
        using var dir = new TempDir();
        string report = dir.File("report.html");
        FeatureReport.Write(report, SmallAnalysis(), [4, 3]);
        string png = dir.File("shot.png");
        var psi = new ProcessStartInfo(ChromiumFactAttribute.Path ?? "chromium") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", $"--user-data-dir={dir.File("profile")}", $"--screenshot={png}", "--window-size=1200,1600", new Uri(report).AbsoluteUri })
            psi.ArgumentList.Add(a);
        using (var p = Process.Start(psi)!)
        {
            var drain = Task.WhenAll(p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
            Assert.True(p.WaitForExit(120_000), "chromium did not finish within 2 minutes");
            drain.Wait();
        }
        Assert.True(File.Exists(png), "chromium wrote no screenshot");
        Assert.Equal((1200, 1600), PngSize(File.ReadAllBytes(png)));
        using var bitmap = SKBitmap.Decode(png);
        int dark = 0, coloured = 0, n = 0;
        for (int y = 0; y < bitmap.Height; y += 4)
            for (int x = 0; x < bitmap.Width; x += 4)
            {
                var c = bitmap.GetPixel(x, y);
                n++;
                if (c.Red + c.Green + c.Blue < 200) dark++;                                  // text
                if (Math.Abs(c.Blue - c.Red) > 60) coloured++;                            // the figures' bars
            }
        Assert.True(dark > n / 500, $"only {dark} of {n} sampled pixels are dark: no text rendered");
        Assert.True(coloured > n / 200, $"only {coloured} of {n} sampled pixels are coloured: no figure rendered");
    }
}
