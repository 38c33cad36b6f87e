namespace SaeSharp.Tests.Cli;

public class DemoCommandTests
{
    [Fact]
    public void DemoRecoversTheToyFeaturesAndWritesAReport()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var (code, output, err) = CliRunner.Run("demo", "--out", dir);
        Assert.True(code == 0, err + output);
        var topk = output.Split('\n').Single(l => l.StartsWith("topk_k") && !l.Contains(':'));
        double mcc = double.Parse(topk.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(mcc > 0.95, $"TopK MCC on toy {mcc}:\n{output}");
        var html = File.ReadAllText(Path.Combine(dir, "report.html"));
        Assert.Contains("<svg", html);
        Assert.Contains("standard_l1", html);
        // The same figures as every report (ScottPlot: heatmaps with axis labels, training curves) and the settings each SAE ran with.
        Assert.Contains("Loss (log scale)", html);
        Assert.Contains("true feature (64)", html);
        Assert.Contains("<h2>Settings</h2>", html);
        Assert.Contains("<td>l1_coefficient</td>", html);
        Assert.True(File.Exists(Path.Combine(dir, "standard_l1", "report.html"))); // each training run's own report
        Assert.True(File.Exists(Path.Combine(dir, "standard_l1", "cfg.json")));
        Directory.Delete(dir, true);
    }
}
