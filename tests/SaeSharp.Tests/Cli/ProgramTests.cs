using SaeSharp.Tests.IO;

namespace SaeSharp.Tests.Cli;

/// <summary>The top-level handler: failures a user can cause end as one `error: ...` line and exit code 1.</summary>
public class ProgramTests
{
    [Fact]
    public void AccessDeniedOnAnOutputIsOneErrorLineNamingThePath()
    {
        using var dir = new TempDir();
        string acts = TrainCommandTests.WriteActivations(dir.Root, rows: 64);
        string outDir = dir.File("run");
        // The atomic write's temp file cannot be opened (a folder is in its place): .NET reports access denied,
        // as it does for a read-only folder or a file owned by someone else (which root, running CI here, bypasses).
        Directory.CreateDirectory(Path.Combine(outDir, "train_settings.json.tmp"));
        var r = CliRunner.Run("train", "--activations", acts, "--d-sae", "8", "--k", "2", "--steps", "2", "--batch-size", "16", "--out", outDir);
        Assert.Equal(1, r.Code);
        var lines = r.Err.Trim().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains("train_settings.json", lines[0]);
    }
}
