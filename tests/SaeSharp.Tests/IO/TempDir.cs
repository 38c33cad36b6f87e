namespace SaeSharp.Tests.IO;

/// <summary>A fresh folder under the system temp folder, deleted on Dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("saesharp-io-").FullName;

    public string File(string name) => System.IO.Path.Combine(Root, name);

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
