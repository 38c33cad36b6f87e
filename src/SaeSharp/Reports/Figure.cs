using ScottPlot;
using SkiaSharp;
using SaeSharp.IO;

namespace SaeSharp.Reports;

/// <summary>
/// One figure (a ScottPlot plot, or several panels of one) at a fixed pixel size, rendered as PNG or SVG. Every file
/// goes through <see cref="AtomicFile"/>.
/// </summary>
public sealed class Figure
{
    private readonly Plot? _plot;
    private readonly Multiplot? _panels;

    public int Width { get; }
    public int Height { get; }
    /// <summary>The file name stem the figure is saved under (drrik's names: feature_density, top_features_density, ...).</summary>
    public string Name { get; }

    public Figure(string name, Plot plot, int width, int height) { Name = name; _plot = plot; Width = width; Height = height; }
    public Figure(string name, Multiplot panels, int width, int height) { Name = name; _panels = panels; Width = width; Height = height; }

    /// <summary>The plots the figure holds (one, or each panel).</summary>
    public IReadOnlyList<Plot> Plots => _plot is not null ? [_plot] : _panels!.Subplots.GetPlots();

    public byte[] Png()
    {
        if (_plot is not null) return _plot.GetImageBytes(Width, Height, ImageFormat.Png);
        using var surface = SKSurface.Create(new SKImageInfo(Width, Height)) ?? throw new InvalidOperationException("SkiaSharp could not create a drawing surface");
        _panels!.Render(surface.Canvas, new PixelRect(new PixelSize(Width, Height)));
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>The SVG, its bitmaps (heatmap cells) marked to scale without smoothing, as the PNG draws them.</summary>
    public string Svg() => RawSvg().Replace("<image ", "<image style=\"image-rendering:pixelated\" ", StringComparison.Ordinal);

    private string RawSvg()
    {
        if (_plot is not null) return _plot.GetSvgXml(Width, Height);
        using var stream = new MemoryStream();
        using (var canvas = SKSvgCanvas.Create(new SKRect(0, 0, Width, Height), stream))
            _panels!.Render(canvas, new PixelRect(new PixelSize(Width, Height)));
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Writes <c>{Name}.png</c> and <c>{Name}.svg</c> into <paramref name="folder"/>; returns their paths.</summary>
    public (string Png, string Svg) Save(string folder)
    {
        string png = Path.Combine(folder, Name + ".png"), svg = Path.Combine(folder, Name + ".svg");
        AtomicFile.WriteAllBytes(png, Png());
        AtomicFile.WriteAllText(svg, Svg());
        return (png, svg);
    }
}
