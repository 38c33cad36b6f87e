using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using SaeSharp.Analysis;
using SaeSharp.Reports;

namespace SaeSharp.Server;

/// <summary>
/// One feature store as the browser serves it: opened read-only at start (its summary and every latent's statistics
/// row kept in memory, sorted once per statistic), a small pool of read-only connections for the per-latent queries,
/// the eval metrics found for its SAE, and its live model (null with a reason when there is none).
/// </summary>
public sealed class ServedStore : IDisposable
{
    private readonly ConcurrentBag<FeatureStoreReader> _idle = [];
    private readonly SemaphoreSlim _readers;
    private readonly ConcurrentDictionary<string, int[]> _orders = new(StringComparer.Ordinal);
    private readonly List<FeatureStoreReader> _all = [];

    internal ServedStore(int id, string name, string path, int readers)
    {
        Id = id;
        Name = name;
        StorePath = path;
        for (int i = 0; i < readers; i++)
        {
            var r = FeatureStore.Open(path);
            _all.Add(r);
            _idle.Add(r);
        }
        _readers = new SemaphoreSlim(readers, readers);
        Summary = _all[0].Summary;
        Rows = _all[0].Rows;
    }

    /// <summary>The store's index in the URL (<c>/stores/{Id}</c>).</summary>
    public int Id { get; }
    /// <summary>The SAE's name, with a suffix when two stores share one.</summary>
    public string Name { get; }
    public string StorePath { get; }
    public AnalysisSummary Summary { get; }
    public IReadOnlyList<FeatureSummaryRow> Rows { get; }
    public int DSae => Summary.DSae;
    /// <summary>The SAE's eval.json entry's metric groups (group → metric → value), when one was given.</summary>
    public JsonObject? EvalMetrics { get; internal set; }
    public string? EvalFile { get; internal set; }
    public LiveModel? Live { get; internal set; }
    /// <summary>Why there is no live model (text search and steering are then refused).</summary>
    public string? LiveUnavailable { get; internal set; }

    /// <summary>Runs <paramref name="query"/> on a read-only connection of the pool.</summary>
    public T Read<T>(Func<FeatureStoreReader, T> query)
    {
        _readers.Wait();
        try
        {
            if (!_idle.TryTake(out var reader)) throw new InvalidOperationException("feature store reader pool is empty");
            try { return query(reader); }
            finally { _idle.Add(reader); }
        }
        finally { _readers.Release(); }
    }

    /// <summary>Feature indices sorted by <paramref name="column"/> (one of <see cref="FeatureStore.SortColumns"/>), ascending, ties by index; computed once.</summary>
    public int[] Order(string column) => _orders.GetOrAdd(column, c =>
    {
        var idx = Enumerable.Range(0, Rows.Count).ToArray();
        if (c == "feature") return idx;
        var keys = Rows.Select(r => Figures.Statistic(r, c)).ToArray();
        return idx.OrderBy(i => keys[i]).ThenBy(i => i).ToArray();
    });

    public void Dispose()
    {
        foreach (var r in _all) r.Dispose();
        _readers.Dispose();
    }
}
