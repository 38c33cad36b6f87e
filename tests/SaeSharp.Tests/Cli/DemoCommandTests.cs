namespace SaeSharp.Tests.Cli;

public partial class DemoCommandTests
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [Fact]
    public void DemoRecoversTheToyFeaturesAndWritesAReport()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var (code, output, err) = CliRunner.Run("demo", "--out", dir);
        Assert.True(code == 0, err + output);
        var topk = output.Split('\n').Single(l => l.StartsWith("topk_k") && !l.Contains(':'));
        var cells = topk.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        double mcc = double.Parse(cells[1], System.Globalization.CultureInfo.InvariantCulture);
        // The true L0 announced before training is the table's "L0 true": both over the same evaluation samples.
        string announced = output.Split('\n')[0].Split("true L0 ")[1].Trim();
        Assert.Equal(cells[4], announced);
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

    [Theory]
    [InlineData("demo")]
    [InlineData("synth")]
    public void SigtermStopsCleanlyWithExitCode130(string command)
    {
        // Like train: the running SAE writes a checkpoint and the command says what it kept, instead of an
        // unhandled OperationCanceledException (exit 134).
        var dir = Directory.CreateTempSubdirectory().FullName;
        string[] args = command == "demo" ? ["demo", "--out", dir]
            : ["synth", "train", "--architecture", "topk", "--d-sae", "64", "--k", "4", "--batch-size", "256", "--samples", "100000000", "--out", dir];
        using var p = CliRunner.Start(args);
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        // A run writes train_settings.json as it starts training, after the signal handlers are in place.
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!Directory.EnumerateFiles(dir, "train_settings.json", SearchOption.AllDirectories).Any() && !p.HasExited && DateTime.UtcNow < deadline)
            Thread.Sleep(20);
        Assert.False(p.HasExited, "exited before training started: " + output);
        Assert.Equal(0, Kill(p.Id, 15)); // SIGTERM
        bool stopped = p.WaitForExit(60_000);
        if (!stopped) p.Kill();
        p.WaitForExit(); // drains the output readers
        string all;
        lock (output) all = output.ToString();
        Assert.True(stopped, "did not stop after SIGTERM: " + all);
        Assert.True(p.ExitCode == 130, $"exit code {p.ExitCode}: {all}");
        Assert.DoesNotContain("Unhandled", all);
        Assert.Contains("interrupted", all);
        Assert.Contains("checkpoint", all);
        Assert.True(Directory.EnumerateFiles(dir, "latest.json", SearchOption.AllDirectories).Any(), "no checkpoint written");
        Directory.Delete(dir, true);
    }
}
