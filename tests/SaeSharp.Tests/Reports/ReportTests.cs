using System.Xml.Linq;
using SaeSharp.Reports;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Reports;

public class ReportTests
{
    [Fact]
    public void HeatmapIsWellFormedSvgWithOneCellPerEntry()
    {
        var t = Tensor.FromArray(new float[] { 0, 1, 0.5f, 0.25f, 1, 0 }, 2, 3);
        var svg = Svg.Heatmap(t, "cos <sim>", "true", "sae");
        var doc = XDocument.Parse(svg);
        XNamespace ns = "http://www.w3.org/2000/svg";
        // 6 cells + frame + 50 colour-bar steps.
        Assert.Equal(6 + 1 + 50, doc.Descendants(ns + "rect").Count());
        Assert.Contains("#ffffff", svg); // value 0 → white
        Assert.Contains("cos &lt;sim&gt;", svg);
    }

    [Fact]
    public void LargeMatricesAreBinned()
    {
        var t = Tensor.Filled(0.5f, 1000, 300);
        var doc = XDocument.Parse(Svg.Heatmap(t, "x", "a", "b", maxCells: 20));
        Assert.Equal(20 * 20 + 1 + 50, doc.Descendants(XName.Get("rect", "http://www.w3.org/2000/svg")).Count());
    }

    [Fact]
    public void ReportRendersTablesAndCharts()
    {
        var chart = Svg.LineChart("loss", "step", new double[] { 1, 2, 3 }, new Dictionary<string, IReadOnlyList<double>> { ["mse"] = new double[] { 3, 2, 1 } }, logY: true);
        XDocument.Parse(chart);
        var html = new HtmlReport("r").Heading("h").Table(new[] { "a", "b" }, new[] { new[] { "1", "<2>" } }).Figure(chart).Render();
        Assert.Contains("<td>&lt;2&gt;</td>", html);
        Assert.Contains("<polyline", html);
    }
}
