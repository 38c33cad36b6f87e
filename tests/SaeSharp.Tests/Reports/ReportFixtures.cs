using System.Buffers.Binary;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using SaeSharp.Analysis;
using SaeSharp.Reports;

namespace SaeSharp.Tests.Reports;

/// <summary>A small hand-made analysis (no model) and checks of rendered figures.</summary>
public static class ReportFixtures
{
    /// <summary>Densities of the six latents; latents 0 and 1 are dead.</summary>
    public static readonly double[] Densities = [0, 0, 1e-3, 2e-3, 0.5, 1e-6];

    public static FeatureAnalysis SmallAnalysis()
    {
        var features = new List<FeatureDetail>();
        for (int j = 0; j < Densities.Length; j++)
        {
            bool fires = Densities[j] > 0;
            var tokens = new[] { "Once", " upon", " a", " time", "\n", " <b>" };
            var acts = new[] { 0f, 0.5f * j, j, 0f, 0.25f, 0f };
            var examples = fires
                ? Enumerable.Range(0, 3).Select(i => new FeatureExample(j, ExampleKind.Top, 0, i, j - 0.5f * i, i, 2, 0, [10, 11, 12, 13, 14, 15], tokens, acts)).ToList()
                : [];
            var quantile = fires ? new FeatureExample(j, ExampleKind.Quantile, 1, 0, 0.3f * j, 7, 3, 1, [11, 12, 13], tokens[1..4], [0f, 0.3f * j, 0f]) : null;
            features.Add(new FeatureDetail
            {
                Stats = new FeatureSummaryRow(j, (long)(Densities[j] * 1e6), Densities[j], fires ? j : 0, fires ? 0.1 : 0, Densities[j] * j, fires ? j / 2.0 : 0, 1 + 0.1 * j),
                ActivationHistogram = fires ? new Histogram(0.1, j, [3, 0, 5, 1]) : new Histogram(0, 0, new long[4]),
                TopExamples = examples,
                QuantileGroups = fires
                    ? [new QuantileGroup(0, 0, j / 2.0, 4, 4e-6, []), new QuantileGroup(1, j / 2.0, j, 1, 1e-6, [quantile!])]
                    : [new QuantileGroup(0, 0, 0, 0, 0, []), new QuantileGroup(1, 0, 0, 0, 0, [])],
                DecoderHistogram = new Histogram(-1, 1, [1, 2, 0, 4]),
                TopLogits = [new LogitEntry(3, " dog", 1.5f), new LogitEntry(4, " cat", 1.2f)],
                BottomLogits = [new LogitEntry(5, "\n", -2f), new LogitEntry(6, " <&>", -1f)],
                LogitHistogram = new Histogram(-2, 1.5, [1, 0, 2, 2, 1]),
            });
        }
        return new FeatureAnalysis
        {
            Summary = new AnalysisSummary
            {
                SaeName = "fixture", SaePath = "/tmp/fixture", Architecture = "topk", DIn = 4, DSae = Densities.Length, HookName = "blocks.0.hook_resid_post",
                ModelPath = "/models/m", DatasetPath = "/data/d.txt", Input = "tokens", Sequences = 10, Positions = 1_000_000, LogitNote = "test logits",
                Metrics = new Dictionary<string, double> { ["l0"] = 3.5, ["explained_variance"] = 0.9 },
                Settings = new JsonObject { ["context_size"] = 128 }, SaeConfig = new JsonObject { ["architecture"] = "topk" },
            },
            Features = features,
        };
    }

    /// <summary>The width and height in a PNG's IHDR chunk, after checking the signature.</summary>
    public static (int Width, int Height) PngSize(byte[] png)
    {
        byte[] signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        Assert.True(png.Length > 24 && png.AsSpan(0, 8).SequenceEqual(signature), "not a PNG file");
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        return (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
    }

    public static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    /// <summary>Parses an SVG, checks its size, and returns its text (trimmed, one entry per text element) and the document.</summary>
    public static (XDocument Doc, List<string> Texts) ParseSvg(string svg, int width, int height)
    {
        var doc = XDocument.Parse(svg);
        Assert.Equal(Svg + "svg", doc.Root!.Name);
        Assert.Equal(width.ToString(), doc.Root.Attribute("width")!.Value);
        Assert.Equal(height.ToString(), doc.Root.Attribute("height")!.Value);
        return (doc, doc.Descendants(Svg + "text").Select(t => t.Value.Trim()).ToList());
    }

    public static int Bars(XDocument doc) => doc.Descendants(Svg + "rect").Count(r => (string?)r.Attribute("fill") == Figures.BarColor);

    public static int Points(XDocument doc, string color = Figures.PointColor) =>
        doc.Descendants(Svg + "ellipse").Count(e => (string?)e.Attribute("fill") == color);

    /// <summary>
    /// The colour the figure's PNG shows at data coordinates (x, y) of its (only) plot: the PNG is rendered first, which
    /// lays the plot out, then the coordinates are mapped to its pixels.
    /// </summary>
    public static SkiaSharp.SKColor ColorAt(Figure f, double x, double y)
    {
        using var bitmap = SkiaSharp.SKBitmap.Decode(f.Png());
        var pixel = f.Plots[0].GetPixel(new ScottPlot.Coordinates(x, y));
        return bitmap.GetPixel((int)pixel.X, (int)pixel.Y);
    }

    /// <summary>Whether a colour is viridis's low end (dark purple, #440154) rather than its high end (yellow, #FDE725).</summary>
    public static bool IsViridisLow(SkiaSharp.SKColor c) => c.Blue > c.Green && c.Red < 0x90;

    /// <summary>Saves the figure into <paramref name="dir"/>, checks both files, and returns the SVG's document and texts.</summary>
    public static (XDocument Doc, List<string> Texts) SavedAndValid(Figure f, string dir)
    {
        var (png, svg) = f.Save(dir);
        Assert.Equal(Path.Combine(dir, f.Name + ".png"), png);
        Assert.Equal((f.Width, f.Height), PngSize(File.ReadAllBytes(png)));
        return ParseSvg(File.ReadAllText(svg), f.Width, f.Height);
    }
}
