using SaeSharp.Models;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Models;

/// <summary>Models found offline by id in a Hugging Face hub cache laid out as huggingface_hub writes it.</summary>
public sealed class HuggingFaceCacheTests : IDisposable
{
    private const string Model = "models/stories260K";
    private const string Main = "0123456789abcdef0123456789abcdef01234567", Older = "89abcdef0123456789abcdef0123456789abcdef";
    private readonly string _hub = Directory.CreateTempSubdirectory("saesharp-hub").FullName;
    public void Dispose() => Directory.Delete(_hub, recursive: true);

    /// <summary>
    /// models--karpathy--stories260K with two snapshots: refs/main names the newer, whose files link into blobs/ as the
    /// hub's cache does; the older holds only a config.json (an incomplete download).
    /// </summary>
    private string FakeCache()
    {
        string repo = Path.Combine(_hub, "models--karpathy--stories260K");
        string snapshot = Path.Combine(repo, "snapshots", Main);
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
        {
            string blob = Path.Combine(repo, "blobs", file + ".blob");
            File.Copy(SharedData.Path($"{Model}/{file}"), blob);
            File.CreateSymbolicLink(Path.Combine(snapshot, file), Path.Combine("..", "..", "blobs", file + ".blob"));
        }
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Main); // no newline, as the hub writes it
        string older = Path.Combine(repo, "snapshots", Older);
        Directory.CreateDirectory(older);
        File.Copy(SharedData.Path($"{Model}/config.json"), Path.Combine(older, "config.json"));
        return repo;
    }

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json")]
    public void AModelIdLoadsFromTheSnapshotRefsMainNames()
    {
        FakeCache();
        var location = HuggingFaceCache.Locate("karpathy/stories260K", null, _hub);
        Assert.Equal(Path.Combine(_hub, "models--karpathy--stories260K", "snapshots", Main), location.Path);
        Assert.Equal("karpathy/stories260K", location.Name);
        Assert.Equal(("main", Main), (location.Revision, location.Commit));
        // The model behind the id is the shared one: the same logits.
        var byId = HookedTransformer.Load(location.Path, Compute.All);
        var direct = HookedTransformer.Load(SharedData.Path(Model), Compute.All);
        int[] prompt = [1, 403, 407, 261];
        Assert.Equal(direct.Forward(prompt).Span.ToArray(), byId.Forward(prompt).Span.ToArray());
        // A commit hash selects its snapshot directly.
        Assert.Equal(Path.Combine(_hub, "models--karpathy--stories260K", "snapshots", Main), HuggingFaceCache.Locate("karpathy/stories260K", Main, _hub).Path);
    }

    [SharedFact(Model + "/model.safetensors", Model + "/tokenizer.json")]
    public void WhatIsNotInTheCacheIsAClearError()
    {
        string repo = FakeCache();
        var e = Assert.Throws<FileNotFoundException>(() => HuggingFaceCache.Locate("karpathy/stories15M", null, _hub));
        Assert.Contains("models--karpathy--stories15M", e.Message);
        Assert.Contains("huggingface-cli download karpathy/stories15M", e.Message);
        e = Assert.Throws<FileNotFoundException>(() => HuggingFaceCache.Locate("karpathy/stories260K", "v2", _hub));
        Assert.Contains("refs/v2", e.Message);
        Assert.Contains("main", e.Message); // the refs there are listed
        // A branch whose snapshot lacks the weights' config is an incomplete download.
        File.WriteAllText(Path.Combine(repo, "refs", "old"), Older + "\n");
        Assert.Equal(Path.Combine(repo, "snapshots", Older), HuggingFaceCache.Locate("karpathy/stories260K", "old", _hub).Path);
        File.Delete(Path.Combine(repo, "snapshots", Older, "config.json"));
        e = Assert.Throws<FileNotFoundException>(() => HuggingFaceCache.Locate("karpathy/stories260K", "old", _hub));
        Assert.Contains("incomplete download", e.Message);
        // A local path wins over an id, and takes no revision.
        Assert.Equal("stories260K", HuggingFaceCache.Locate(SharedData.Path(Model), null, _hub).Name);
        Assert.Throws<ArgumentException>(() => HuggingFaceCache.Locate(SharedData.Path(Model), "main", _hub));
        Assert.Throws<FileNotFoundException>(() => HuggingFaceCache.Locate("not a/model id", null, _hub));
    }

    [Fact]
    public void TheCacheFolderComesFromTheEnvironmentAsTheHubReadsIt()
    {
        string Hub(params (string Name, string Value)[] vars) =>
            HuggingFaceCache.HubDirectory(n => vars.FirstOrDefault(v => v.Name == n).Value);
        Assert.Equal("/x/hub-cache", Hub(("HF_HUB_CACHE", "/x/hub-cache"), ("HF_HOME", "/y")));
        Assert.Equal(Path.Combine("/y", "hub"), Hub(("HF_HOME", "/y")));
        Assert.Equal(Path.Combine("/c", "huggingface", "hub"), Hub(("XDG_CACHE_HOME", "/c"), ("HOME", "/h")));
        Assert.Equal(Path.Combine("/h", ".cache", "huggingface", "hub"), Hub(("HOME", "/h")));
    }
}
