using System.Collections.Concurrent;
using SaeSharp.Reports;

namespace SaeSharp.Server;

/// <summary>
/// The pages' figures (the reports' ScottPlot figures as SVG), drawn once per store and latent and kept (up to a
/// bound); drawing is serialised, since a figure costs milliseconds and the plotting library shares fonts.
/// </summary>
public sealed class FigureCache(int capacity = 512)
{
    private readonly ConcurrentDictionary<(int Store, int Feature), string> _svg = new();
    private readonly object _draw = new();

    /// <summary>The feature-density histogram of a store (feature -1 in the cache).</summary>
    public string Density(ServedStore s) => Get((s.Id, -1), () => Figures.FeatureDensity(s.Rows.Select(r => r.Density).ToArray()));

    public string ActivationHistogram(ServedStore s, int feature) => Get((s.Id, feature), () => Figures.ActivationHistogram(s.Read(r => r.Detail(feature))));

    private string Get((int, int) key, Func<Figure> figure)
    {
        if (_svg.TryGetValue(key, out var svg)) return svg;
        lock (_draw)
        {
            if (_svg.TryGetValue(key, out svg)) return svg;
            svg = figure().Svg();
            if (_svg.Count >= capacity) _svg.Clear();
            _svg[key] = svg;
            return svg;
        }
    }
}
