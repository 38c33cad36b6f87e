using System.Text.RegularExpressions;

namespace SaeSharp.Tests;

/// <summary>
/// The library's layer order (../shared/DESIGN.md), checked over the source: a folder of src/SaeSharp may name only
/// the folders before it, in <c>using</c> lines or fully qualified names, and some pairs are kept apart beyond the order.
/// Only the CLI and the server reach everything.
/// </summary>
public class LayeringTests
{
    private static readonly string[] Order =
        ["Tensors", "IO", "Text", "Models", "Data", "Saes", "Training", "Synthetic", "Evals", "Analysis", "Reports", "Runs"];

    /// <summary>Stricter than the order: pairs that must not meet even though the order allows them.</summary>
    private static readonly Dictionary<string, string[]> Forbidden = new()
    {
        ["Saes"] = ["Models", "Data", "Text"],   // an SAE is a function of activations, whatever produced them
        ["Reports"] = ["Runs"],
    };

    public static string SourceRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SaeSharp.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException("the repository root (SaeSharp.slnx) is not above the test binary");
    }

    private static readonly Regex Reference = new(@"\bSaeSharp\.(?<layer>[A-Z][A-Za-z]*)\b", RegexOptions.Compiled);

    /// <summary>Every (file, line, layer named) in a library folder, skipping comments.</summary>
    private static IEnumerable<(string File, int Line, string Layer)> References(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories))
        {
            int n = 0;
            foreach (var raw in File.ReadLines(file))
            {
                n++;
                string line = raw.TrimStart();
                if (line.StartsWith("//", StringComparison.Ordinal)) continue;
                int comment = line.IndexOf("//", StringComparison.Ordinal);
                if (comment >= 0) line = line[..comment];
                foreach (Match m in Reference.Matches(line)) yield return (file, n, m.Groups["layer"].Value);
            }
        }
    }

    [Fact]
    public void EveryLibraryFolderNamesOnlyTheLayersBeforeIt()
    {
        string lib = Path.Combine(SourceRoot(), "src", "SaeSharp");
        var folders = Directory.GetDirectories(lib).Select(Path.GetFileName).Where(f => f is not ("bin" or "obj")).ToList();
        Assert.Empty(folders.Except(Order)); // a new folder must take its place in the order
        var violations = new List<string>();
        foreach (var folder in folders)
        {
            int rank = Array.IndexOf(Order, folder);
            foreach (var (file, line, layer) in References(Path.Combine(lib, folder!)))
            {
                if (layer == folder || layer == "Tests" || !Order.Contains(layer)) continue;
                bool later = Array.IndexOf(Order, layer) > rank;
                bool forbidden = Forbidden.TryGetValue(folder!, out var no) && no.Contains(layer);
                if (later || forbidden) violations.Add($"{Path.GetRelativePath(lib, file)}:{line} ({folder} names {layer})");
            }
        }
        Assert.True(violations.Count == 0, "layer order broken:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void TheRuleCatchesAnUpwardReference()
    {
        // The check itself must fail on a file that reaches up the order, or the test above proves nothing.
        var dir = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllText(Path.Combine(dir, "Bad.cs"), "using SaeSharp.Training;\n// SaeSharp.Runs in a comment does not count\nvar x = SaeSharp.Evals.Thing.Y;\n");
        var found = References(dir).Select(r => r.Layer).ToList();
        Assert.Equal(["Training", "Evals"], found);
        Directory.Delete(dir, true);
    }
}
