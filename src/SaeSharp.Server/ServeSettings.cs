using System.Net;

namespace SaeSharp.Server;

/// <summary>
/// Settings of `saesharp serve` (snake_case names, bound from YAML, SAESHARP_SERVE__* variables, --set and flags): where
/// the browser listens and the limits every request is held to.
/// </summary>
public sealed record ServeSettings
{
    /// <summary>Address to listen on; loopback unless told otherwise.</summary>
    public string Host { get; set; } = "127.0.0.1";
    /// <summary>TCP port (0 picks a free one).</summary>
    public int Port { get; set; } = 5151;
    /// <summary>Live model jobs (text search, steering) running at once; the rest wait in the queue.</summary>
    public int MaxConcurrentJobs { get; set; } = 1;
    /// <summary>Jobs that may wait for a slot; a request beyond them is refused (503).</summary>
    public int QueueLength { get; set; } = 64;
    /// <summary>A running job is stopped (and reported timed out) after this many seconds.</summary>
    public double JobTimeoutSeconds { get; set; } = 120;
    /// <summary>Longest prompt or search text, in characters.</summary>
    public int MaxPromptChars { get; set; } = 2000;
    /// <summary>Longest prompt or search text, in tokens.</summary>
    public int MaxPromptTokens { get; set; } = 256;
    /// <summary>New tokens a steering run may generate at most.</summary>
    public int MaxNewTokens { get; set; } = 100;
    /// <summary>Largest |strength| (add) or |value| (clamp) a steering request may give.</summary>
    public double MaxStrength { get; set; } = 100;
    /// <summary>Latents one steering request may steer with.</summary>
    public int MaxSteerFeatures { get; set; } = 8;
    /// <summary>Strengths one steering request may compare.</summary>
    public int MaxStrengths { get; set; } = 6;
    /// <summary>Latents a text search lists at most.</summary>
    public int MaxSearchFeatures { get; set; } = 100;
    /// <summary>Rows of the feature list per page unless the request asks for another number.</summary>
    public int PageSize { get; set; } = 50;
    /// <summary>Most rows a feature-list page may ask for.</summary>
    public int MaxPageSize { get; set; } = 1000;
    /// <summary>Read-only connections kept open per store (requests beyond them wait for one).</summary>
    public int ReadersPerStore { get; set; } = 4;
    /// <summary>Finished jobs kept for their results to be fetched; the oldest go first.</summary>
    public int KeepJobs { get; set; } = 256;

    public void Validate()
    {
        if (!IPAddress.TryParse(Host, out _) && Host != "localhost")
            throw new ArgumentException($"host: expected an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost, got '{Host}'");
        if (Port is < 0 or > 65535) throw new ArgumentException($"port must be in [0, 65535], got {Port}");
        Positive(MaxConcurrentJobs, "max_concurrent_jobs");
        Positive(QueueLength, "queue_length");
        if (!(JobTimeoutSeconds > 0) || double.IsInfinity(JobTimeoutSeconds)) throw new ArgumentException($"job_timeout_seconds must be a positive number, got {JobTimeoutSeconds}");
        Positive(MaxPromptChars, "max_prompt_chars");
        Positive(MaxPromptTokens, "max_prompt_tokens");
        Positive(MaxNewTokens, "max_new_tokens");
        if (!(MaxStrength > 0) || double.IsInfinity(MaxStrength)) throw new ArgumentException($"max_strength must be a positive number, got {MaxStrength}");
        Positive(MaxSteerFeatures, "max_steer_features");
        Positive(MaxStrengths, "max_strengths");
        Positive(MaxSearchFeatures, "max_search_features");
        Positive(PageSize, "page_size");
        Positive(MaxPageSize, "max_page_size");
        if (PageSize > MaxPageSize) throw new ArgumentException($"page_size ({PageSize}) is larger than max_page_size ({MaxPageSize})");
        Positive(ReadersPerStore, "readers_per_store");
        Positive(KeepJobs, "keep_jobs");
    }

    private static void Positive(int v, string key)
    {
        if (v < 1) throw new ArgumentException($"{key} must be at least 1, got {v}");
    }
}

/// <summary>
/// What `saesharp serve` reads, all named on its command line (a request never names a file): feature stores (a
/// folder holding features.db, or the file), a model folder for live work instead of the one a store names, eval.json
/// files whose metrics the overview shows, and `saesharp match` output folders.
/// </summary>
public sealed record ServeInputs
{
    public required IReadOnlyList<string> Stores { get; init; }
    public string? ModelPath { get; init; }
    public IReadOnlyList<string> EvalFiles { get; init; } = [];
    public IReadOnlyList<string> MatchDirs { get; init; } = [];
}
