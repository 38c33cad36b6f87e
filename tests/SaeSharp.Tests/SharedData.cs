namespace SaeSharp.Tests;

/// <summary>
/// Locates reference data in ../shared beside the checkout. Tests that need a file use
/// <see cref="SharedFactAttribute"/>: absent files skip the test with a message naming them, unless
/// SAESHARP_REQUIRE_SHARED=1 (as in CI), where the test runs and fails on the missing file.
/// </summary>
public static class SharedData
{
    public static bool Required => Environment.GetEnvironmentVariable("SAESHARP_REQUIRE_SHARED") == "1";

    /// <summary>The shared folder: SAESHARP_SHARED if set, else the first ../shared found walking up from the test binary.</summary>
    public static string? Root { get; } = FindRoot();

    private static string? FindRoot()
    {
        var env = Environment.GetEnvironmentVariable("SAESHARP_SHARED");
        if (!string.IsNullOrEmpty(env)) return Directory.Exists(env) ? System.IO.Path.GetFullPath(env) : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "SaeSharp.slnx")))
            {
                var candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared"));
                return Directory.Exists(candidate) ? candidate : null;
            }
        }
        return null;
    }

    /// <summary>Full path of a shared file (relative to shared/); throws naming it when it is absent.</summary>
    public static string Path(string relative)
    {
        if (Root is null) throw new FileNotFoundException($"../shared is not beside the checkout (needed: {relative})");
        var full = System.IO.Path.Combine(Root, relative);
        if (!File.Exists(full) && !Directory.Exists(full)) throw new FileNotFoundException($"missing shared reference file: ../shared/{relative}", full);
        return full;
    }

    public static string? MissingOf(string[] relatives)
    {
        var missing = relatives.Where(r => Root is null || (!File.Exists(System.IO.Path.Combine(Root, r)) && !Directory.Exists(System.IO.Path.Combine(Root, r)))).ToList();
        return missing.Count == 0 ? null : string.Join(", ", missing.Select(m => "../shared/" + m));
    }
}

/// <summary>A fact that needs files from ../shared; see <see cref="SharedData"/>.</summary>
public sealed class SharedFactAttribute : FactAttribute
{
    public SharedFactAttribute(params string[] files)
    {
        var missing = SharedData.MissingOf(files);
        if (missing is not null && !SharedData.Required) Skip = $"reference data missing: {missing}";
    }
}

/// <summary>A theory that needs files from ../shared; see <see cref="SharedData"/>.</summary>
public sealed class SharedTheoryAttribute : TheoryAttribute
{
    public SharedTheoryAttribute(params string[] files)
    {
        var missing = SharedData.MissingOf(files);
        if (missing is not null && !SharedData.Required) Skip = $"reference data missing: {missing}";
    }
}
