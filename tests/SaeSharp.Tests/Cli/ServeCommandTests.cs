using System.Diagnostics;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Reports.ReportFixtures;

namespace SaeSharp.Tests.Cli;

/// <summary>`saesharp serve` as a command: its errors, and a real process that prints its URL, serves, and stops on SIGTERM.</summary>
public sealed class ServeCommandTests
{
    [Fact]
    public void AMissingStoreOrABadSettingIsAOneLineError()
    {
        using var dir = new TempDir();
        var r = CliRunner.Run("serve", "--store", dir.File("nothing"));
        Assert.Equal(1, r.Code);
        Assert.StartsWith("error: --store ", r.Err);
        Assert.Contains("no features.db there (write one with saesharp analyze)", r.Err);
        FeatureStore.Write(Path.Combine(dir.Root, FeatureStore.FileName), SmallAnalysis());
        r = CliRunner.Run("serve", "--store", dir.Root, "--set", "max_strength=0");
        Assert.Equal(1, r.Code);
        Assert.Contains("error: max_strength must be a positive number, got 0", r.Err);
        r = CliRunner.Run("serve", "--store", dir.Root, "--set", "max_stength=3");
        Assert.Contains("unknown setting 'max_stength'", r.Err);
    }

    [Fact]
    public async Task TheServerPrintsItsUrlServesAndStopsOnSigterm()
    {
        using var dir = new TempDir();
        FeatureStore.Write(Path.Combine(dir.Root, FeatureStore.FileName), SmallAnalysis());
        using var p = CliRunner.Start("serve", "--store", dir.Root, "--port", "0");
        var output = new System.Text.StringBuilder();
        var url = new TaskCompletionSource<string>();
        p.OutputDataReceived += (_, e) =>
        {
            lock (output) output.AppendLine(e.Data);
            const string Marker = "SaeSharp feature browser at ";
            if (e.Data is { } line && line.StartsWith(Marker, StringComparison.Ordinal)) url.TrySetResult(line[Marker.Length..].Split(' ')[0]);
        };
        p.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        try
        {
            var first = await Task.WhenAny(url.Task, Task.Delay(TimeSpan.FromMinutes(2)));
            Assert.True(first == url.Task, "no URL printed: " + output);
            string address = await url.Task;
            Assert.StartsWith("http://127.0.0.1:", address);
            using var http = new HttpClient();
            var stores = JsonNode.Parse(await http.GetStringAsync(address + "api/stores"))!;
            Assert.Equal("fixture", (string)stores["stores"]![0]!["name"]!);
            lock (output) Assert.Contains("store 0: fixture (topk, d_sae 6)", output.ToString());
            Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
            Assert.True(p.WaitForExit(60_000), "did not stop after SIGTERM: " + output);
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited) p.Kill();
        }
    }
}
