using System.Text.RegularExpressions;

namespace SaeSharp.Tests.Server;

/// <summary>
/// No request value reaches the file system as a path: in the server's source only the code that runs at start (the
/// catalog, the match reader, the live model's loader) names a file-system API; the request handlers, pages, views,
/// request parsing and live jobs never do.
/// </summary>
public class ServerSourceTests
{
    private static readonly string[] StartUp = ["ServeCatalog.cs", "MatchOutput.cs", "LiveModel.cs"];

    private static readonly Regex FileSystem = new(@"(?<![\w.])(?:System\.IO\.)?(File|Directory|FileInfo|DirectoryInfo|FileStream|StreamReader|StreamWriter|Path|PhysicalFileProvider|SendFileAsync|UseStaticFiles|Results\.File)\b\s*[.(]",
        RegexOptions.Compiled);

    /// <summary>Every (file, line) outside the start-up files whose code names a file-system API.</summary>
    private static List<string> Uses(string folder) =>
        Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !StartUp.Contains(Path.GetFileName(f)))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i + 1, line.TrimStart())))
            .Where(t => !t.Item3.StartsWith("//", StringComparison.Ordinal) && !t.Item3.StartsWith("///", StringComparison.Ordinal) && FileSystem.IsMatch(t.Item3))
            .Select(t => $"{Path.GetFileName(t.f)}:{t.Item2}: {t.Item3}").ToList();

    [Fact]
    public void OnlyStartUpCodeNamesTheFileSystem()
    {
        string server = Path.Combine(LayeringTests.SourceRoot(), "src", "SaeSharp.Server");
        Assert.True(File.Exists(Path.Combine(server, "FeatureServer.cs")), "the server's source is not where expected");
        var uses = Uses(server);
        Assert.True(uses.Count == 0, "file-system calls outside the start-up code:\n" + string.Join("\n", uses));
    }

    [Fact]
    public void TheCheckFindsAFileCallInAHandler()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllText(Path.Combine(dir, "Handler.cs"), "// File.ReadAllText in a comment is fine\nvar s = File.ReadAllText(name);\nreturn Results.File(path);\nvar p = ctx.Request.Path.Value;\nusing var f = new System.IO.FileStream(name, mode);\n");
        File.WriteAllText(Path.Combine(dir, "ServeCatalog.cs"), "var s = File.ReadAllText(startPath);\n");
        Assert.Equal(["Handler.cs:2: var s = File.ReadAllText(name);", "Handler.cs:3: return Results.File(path);", "Handler.cs:5: using var f = new System.IO.FileStream(name, mode);"], Uses(dir));
        Directory.Delete(dir, true);
    }
}
