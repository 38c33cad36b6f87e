namespace SaeSharp.IO;

/// <summary>
/// Every file SaeSharp writes goes through here: the content is written to <c>path.tmp</c>, flushed, and
/// renamed over <c>path</c>, so a crash mid-write never leaves a half-written file in place of a good one.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> writeContent) =>
        WriteVia(path, tmp =>
        {
            using var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            writeContent(fs);
        });

    /// <summary>
    /// For writers that need a file name rather than a stream (e.g. a database): <paramref name="writeFile"/> writes
    /// <c>path.tmp</c>, which is then flushed to disk and renamed over <paramref name="path"/>.
    /// </summary>
    public static void WriteVia(string path, Action<string> writeFile)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        string tmp = full + ".tmp";
        try
        {
            File.Delete(tmp);
            writeFile(tmp);
            using (var fs = new FileStream(tmp, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) fs.Flush(flushToDisk: true);
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            // Cleanup only: a temp file that cannot be removed must not hide the error that stopped the write.
            try { File.Delete(tmp); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            throw;
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false), leaveOpen: true); w.Write(text); });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }
}
