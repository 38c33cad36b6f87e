using System.Text.RegularExpressions;

namespace SaeSharp.Models;

/// <summary>
/// Where a model was found: <paramref name="Path"/> to load (a folder or a llama2.c .bin), the <paramref name="Name"/>
/// cfg.json metadata records (the Hugging Face id, or the folder's name), and for a model from the Hugging Face cache
/// the <paramref name="Revision"/> asked for and the <paramref name="Commit"/> of the snapshot it resolved to.
/// </summary>
public sealed record ModelLocation(string Path, string Name, string? Revision = null, string? Commit = null);

/// <summary>
/// Models already downloaded into the local Hugging Face hub cache, found offline by id: the cache's
/// <c>models--{org}--{name}/snapshots/{commit}/</c> folders, with <c>refs/{revision}</c> naming the commit of a branch or
/// tag (<c>main</c> by default). The cache lives at HF_HUB_CACHE, else HF_HOME/hub, else
/// ~/.cache/huggingface/hub (XDG_CACHE_HOME replacing ~/.cache when set), as huggingface_hub lays it out.
/// </summary>
public static partial class HuggingFaceCache
{
    /// <summary>The revision used when none is given.</summary>
    public const string DefaultRevision = "main";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")]
    private static partial Regex RepoIdRegex();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitRegex();

    /// <summary>
    /// The hub cache folder named by the environment (<paramref name="variable"/> looks a variable up: the process
    /// environment, or the CLI's view of it with a .env file underneath).
    /// </summary>
    public static string HubDirectory(Func<string, string?> variable)
    {
        static string? Set(string? v) => string.IsNullOrWhiteSpace(v) ? null : v;
        if (Set(variable("HF_HUB_CACHE")) is { } hub) return hub;
        if (Set(variable("HUGGINGFACE_HUB_CACHE")) is { } legacy) return legacy;
        if (Set(variable("HF_HOME")) is { } home) return System.IO.Path.Combine(home, "hub");
        string cacheRoot = Set(variable("XDG_CACHE_HOME"))
                           ?? System.IO.Path.Combine(Set(variable("HOME")) ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return System.IO.Path.Combine(cacheRoot, "huggingface", "hub");
    }

    /// <summary>
    /// <paramref name="model"/> as a local file or folder when one exists at that path, else as a Hugging Face id
    /// (<c>org/name</c> or <c>name</c>) looked up in the hub cache at <paramref name="hubDirectory"/>, at
    /// <paramref name="revision"/> (a branch or tag in <c>refs/</c>, or a commit hash; <c>main</c> when null). Nothing
    /// is downloaded: a model missing from the cache is an error saying where it was looked for.
    /// </summary>
    public static ModelLocation Locate(string model, string? revision, string hubDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        if (Directory.Exists(model) || File.Exists(model))
        {
            if (revision is not null) throw new ArgumentException($"--revision {revision}: '{model}' is a local model, not a Hugging Face id; revisions select a snapshot in the Hugging Face cache");
            return new ModelLocation(model, System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(model))));
        }
        if (!RepoIdRegex().IsMatch(model))
            throw new FileNotFoundException($"model not found: {model} (expected a folder with config.json and model.safetensors, a llama2.c .bin file, or a Hugging Face id such as org/name)", model);
        string repo = System.IO.Path.Combine(hubDirectory, "models--" + model.Replace("/", "--", StringComparison.Ordinal));
        if (!Directory.Exists(repo))
            throw new FileNotFoundException($"model '{model}' is neither a local file or folder nor in the Hugging Face cache: {repo} does not exist. " +
                                            "SaeSharp works offline; download it first (e.g. `huggingface-cli download " + model + "`), set HF_HUB_CACHE or HF_HOME to the cache that holds it, or give a local folder", repo);
        string rev = revision ?? DefaultRevision;
        if (rev.Contains("..", StringComparison.Ordinal) || System.IO.Path.IsPathRooted(rev) || rev.Contains('\\'))
            throw new ArgumentException($"--revision: '{rev}' is not a branch, tag or commit name");
        string refFile = System.IO.Path.Combine(repo, "refs", rev);
        string commit;
        if (File.Exists(refFile)) commit = File.ReadAllText(refFile).Trim();
        else if (CommitRegex().IsMatch(rev)) commit = rev;
        else
            throw new FileNotFoundException($"model '{model}' is in the Hugging Face cache ({repo}) but not at revision '{rev}': refs/{rev} does not exist " +
                                            $"(refs there: {List(System.IO.Path.Combine(repo, "refs"), recursive: true)}; snapshots: {List(System.IO.Path.Combine(repo, "snapshots"), recursive: false)})", refFile);
        if (!CommitRegex().IsMatch(commit) && !Directory.Exists(System.IO.Path.Combine(repo, "snapshots", commit)))
            throw new InvalidDataException($"{refFile}: expected a commit hash, got '{commit}'");
        string snapshot = System.IO.Path.Combine(repo, "snapshots", commit);
        if (!Directory.Exists(snapshot))
            throw new FileNotFoundException($"model '{model}' at revision '{rev}' (commit {commit}) has no snapshot in the Hugging Face cache: {snapshot} does not exist " +
                                            $"(snapshots there: {List(System.IO.Path.Combine(repo, "snapshots"), recursive: false)})", snapshot);
        if (!File.Exists(System.IO.Path.Combine(snapshot, "config.json")))
            throw new FileNotFoundException($"model '{model}' snapshot {snapshot} has no config.json (an incomplete download?); download the model again", System.IO.Path.Combine(snapshot, "config.json"));
        return new ModelLocation(snapshot, model, rev, commit);
    }

    private static string List(string dir, bool recursive)
    {
        if (!Directory.Exists(dir)) return "none";
        var names = recursive
            ? Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Select(f => System.IO.Path.GetRelativePath(dir, f).Replace('\\', '/'))
            : Directory.GetDirectories(dir).Select(System.IO.Path.GetFileName);
        var list = names.Order(StringComparer.Ordinal).ToList();
        return list.Count == 0 ? "none" : string.Join(", ", list);
    }
}
