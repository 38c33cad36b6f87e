using System.Globalization;

namespace SaeSharp.Tensors;

/// <summary>
/// The data caches one core sees (L1d and L2 per core, L3 in total) and the CPU's model name, read once from Linux's
/// /sys/devices/system/cpu/cpu0/cache and /proc/cpuinfo; elsewhere, or where they cannot be read, common sizes
/// (32 KB, 1 MB, 32 MB) stand in and <see cref="Detected"/> is false. The GEMM's blocking is derived from it.
/// </summary>
public sealed record CacheInfo(long L1d, long L2, long L3, string CpuModel, bool Detected)
{
    public static CacheInfo Fallback { get; } = new(32 << 10, 1 << 20, 32 << 20, "unknown CPU", false);

    /// <summary>This machine's caches, read at first use and kept for the process (they do not change while it runs).</summary>
    public static CacheInfo Machine { get; } = Read("/sys/devices/system/cpu/cpu0/cache", "/proc/cpuinfo");

    /// <summary>Reads the cache folders under <paramref name="cacheDir"/> (index0, index1, ...: level, type, size); missing levels fall back.</summary>
    public static CacheInfo Read(string cacheDir, string cpuInfo)
    {
        string model = ReadModel(cpuInfo);
        long l1 = 0, l2 = 0, l3 = 0;
        try
        {
            if (Directory.Exists(cacheDir))
                foreach (var dir in Directory.GetDirectories(cacheDir, "index*"))
                {
                    string type = ReadText(Path.Combine(dir, "type"));
                    if (type is not ("Data" or "Unified")) continue;
                    if (!int.TryParse(ReadText(Path.Combine(dir, "level")), NumberStyles.None, CultureInfo.InvariantCulture, out int level)) continue;
                    long size = ParseSize(ReadText(Path.Combine(dir, "size")));
                    if (size <= 0) continue;
                    if (level == 1) l1 = size;
                    else if (level == 2) l2 = size;
                    else if (level == 3) l3 = size;
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        bool detected = l1 > 0 && l2 > 0;
        var f = Fallback;
        return new CacheInfo(l1 > 0 ? l1 : f.L1d, l2 > 0 ? l2 : f.L2, l3 > 0 ? l3 : Math.Max(f.L3, l2), model, detected);
    }

    /// <summary>"32K", "1024K", "32M" or plain bytes, as sysfs writes sizes.</summary>
    public static long ParseSize(string text)
    {
        text = text.Trim();
        if (text.Length == 0) return 0;
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        string digits = unit == 1 ? text : text[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n * unit : 0;
    }

    private static string ReadText(string path) => File.Exists(path) ? File.ReadAllText(path).Trim() : "";

    private static string ReadModel(string cpuInfo)
    {
        try
        {
            if (File.Exists(cpuInfo))
                foreach (var line in File.ReadLines(cpuInfo))
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is int colon and > 0)
                        return line[(colon + 1)..].Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return Fallback.CpuModel;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{CpuModel}: L1d {L1d >> 10} KB, L2 {L2 >> 10} KB per core, L3 {L3 >> 20} MB{(Detected ? "" : " (not detected; assumed)")}");
}
