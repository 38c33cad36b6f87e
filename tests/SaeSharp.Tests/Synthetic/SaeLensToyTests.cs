using SaeSharp.Synthetic;
using SaeSharp.Tensors;
using SaeSharp.Tests.Cli;
using SaeSharp.Tests.IO;

namespace SaeSharp.Tests.Synthetic;

/// <summary>
/// SAELens's synthetic-data tutorial toys written as `synth build --config` YAML: explicit firing probabilities (or a
/// Zipf profile), magnitudes, correlation and hierarchy trees, checked against what SAELens's generator would draw.
/// </summary>
public class SaeLensToyTests
{
    /// <summary>FeatureDictionary(num_features=16, hidden_dim=32, orthogonal) + ActivationGenerator(firing_probabilities=0.25).</summary>
    private const string BasicToy = """
        num_features: 16
        hidden_dim: 32
        seed: 1
        firing_probabilities: {kind: constant, value: 0.25}
        orthogonalize: {steps: 200, lr: 0.01}
        """;

    private static SyntheticModel Build(TempDir dir, string yaml)
    {
        string path = dir.File("model.yaml");
        File.WriteAllText(path, yaml);
        string outDir = dir.File("model");
        var r = CliRunner.Run("synth", "build", "--config", path, "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        return SyntheticModel.Load(outDir);
    }

    private static double Fraction(Tensor f, Func<int, bool> row) => Enumerable.Range(0, f.Rows).Count(row) / (double)f.Rows;

    [Fact]
    public void BasicToySixteenFeaturesFiringAQuarterOfTheTime()
    {
        using var dir = new TempDir();
        var m = Build(dir, BasicToy);
        Assert.All(m.Generator.FiringProbabilities, p => Assert.Equal(0.25f, p));
        Assert.All(m.Generator.MeanMagnitudes, v => Assert.Equal(1f, v)); // SAELens's defaults: magnitude 1, no spread
        Assert.All(m.Generator.StdMagnitudes, v => Assert.Equal(0f, v));
        var (f, _) = m.Sample(20_000, new Rng(2), compute: Compute.All);
        Assert.Equal(4.0, SyntheticEvals.MeanL0(f), 0.05 * 4);
        Assert.True(SyntheticEvals.AbsCosine(m.Dictionary.FeatureVectors, m.Dictionary.FeatureVectors, compute: Compute.All).ToArray()
            .Where((c, i) => i / 16 != i % 16).Max() < 0.05, "features are not near orthogonal");
    }

    [Fact]
    public void HierarchyToyZeroesChildrenOfInactiveParents()
    {
        // HierarchyNode.from_dict({0: {1: {3: {}}, 2: {}}}) over 4 features firing with probability 0.5.
        using var dir = new TempDir();
        var m = Build(dir, """
            num_features: 4
            hidden_dim: 8
            seed: 3
            firing_probabilities: {kind: explicit, values: [0.5, 0.5, 0.5, 0.5]}
            mean_magnitudes: {kind: explicit, values: [1, 2, 3, 4]}
            hierarchy:
              trees:
                - feature_index: 0
                  children:
                    - feature_index: 1
                      children: [3]
                    - 2
            """);
        var tree = Assert.Single(m.Hierarchy);
        Assert.Equal([0, 1, 3, 2], tree.AllFeatureIndices());
        var (f, _) = m.Sample(20_000, new Rng(4), compute: Compute.All);
        double[] marginal = [0.5, 0.25, 0.25, 0.125];
        for (int j = 0; j < 4; j++) Assert.Equal(marginal[j], Fraction(f, r => f[r, j] > 0), 0.02);
        Assert.Equal(0, Fraction(f, r => f[r, 1] > 0 && f[r, 0] == 0));
        Assert.Equal(0, Fraction(f, r => f[r, 3] > 0 && f[r, 1] == 0));
        // Explicit magnitudes with no spread: every firing feature has exactly its mean.
        for (int r = 0; r < 100; r++) for (int j = 0; j < 4; j++) Assert.True(f[r, j] == 0 || f[r, j] == j + 1);
    }

    [Fact]
    public void ParentWithSevenChildrenAndIndependentFeatures()
    {
        // HierarchyNode(0, children=[HierarchyNode(1), ..., HierarchyNode(7)]) plus two free features: a row is empty
        // exactly when the parent and both free features are off, (1 - 0.4)(1 - 0.2)^2 = 0.384 of the time.
        using var dir = new TempDir();
        var m = Build(dir, """
            num_features: 10
            hidden_dim: 16
            seed: 5
            firing_probabilities: {kind: explicit, values: [0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.2, 0.2]}
            hierarchy: {trees: [{feature_index: 0, children: [1, 2, 3, 4, 5, 6, 7]}]}
            """);
        var (f, h) = m.Sample(20_000, new Rng(6), compute: Compute.All);
        Assert.Equal(0.384, Fraction(f, r => Enumerable.Range(0, 10).All(j => f[r, j] == 0)), 0.02);
        Assert.Equal(0.4 + 7 * 0.4 * 0.3 + 2 * 0.2, SyntheticEvals.MeanL0(f), 0.05);
        for (int j = 1; j <= 7; j++) Assert.Equal(0, Fraction(f, r => f[r, j] > 0 && f[r, 0] == 0));
        Assert.Equal(0.384, Fraction(h, r => System.Numerics.Tensors.TensorPrimitives.Norm(h.Row(r)) == 0), 0.02);
    }

    [Fact]
    public void ZipfProfileAndCorrelatedPairs()
    {
        // zipfian_firing_probabilities(16, exponent=1, max_prob=0.5, min_prob=0.01); features 0 and 1 correlated at 0.8.
        using var dir = new TempDir();
        var m = Build(dir, """
            num_features: 16
            hidden_dim: 32
            seed: 7
            firing_probabilities: {kind: zipfian, exponent: 1.0, min: 0.01, max: 0.5}
            correlation:
              kind: pairs
              pairs: [[0, 1, 0.8]]
            """);
        var p = m.Generator.FiringProbabilities;
        Assert.Equal(0.5f, p[0]);
        Assert.Equal(0.01f, p[15], 6);
        Assert.Equal(0.01 + 0.49 * (1.0 / 2 - 1.0 / 16) / (1 - 1.0 / 16), p[1], 6);
        var (f, _) = m.Sample(20_000, new Rng(8), compute: Compute.All);
        double both = Fraction(f, r => f[r, 0] > 0 && f[r, 1] > 0);
        Assert.Equal(p[0], Fraction(f, r => f[r, 0] > 0), 0.02);
        Assert.True(both > 1.5 * p[0] * p[1], $"P(both) {both} vs independent {p[0] * p[1]}");
    }

    [Fact]
    public void ATutorialToyTrainsThroughSynthTrain()
    {
        using var dir = new TempDir();
        string yaml = dir.File("toy.yaml");
        File.WriteAllText(yaml, BasicToy);
        // The tutorial's StandardTrainingSAE(d_sae=16, l1_coefficient=5e-2) recovers every feature.
        var r = CliRunner.Run("synth", "train", "--synthetic-model", yaml, "--architecture", "standard", "--d-sae", "16", "--l1-coefficient", "0.05",
            "--batch-size", "256", "--samples", "128000", "--set", "lr=0.01", "--out", dir.File("run"));
        Assert.True(r.Code == 0, r.Err);
        var row = r.Out.Split('\n').Single(l => l.StartsWith("standard "));
        double mcc = double.Parse(row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(mcc > 0.95, r.Out);
    }

    [Theory]
    [InlineData("firing_probabilities: {kind: explicit, values: [0.5, 0.5]}", 4)]
    [InlineData("firing_probabilities:\n  kind: constant\n  value: 1.5", 4)]
    [InlineData("firing_probabilities: {kind: constant, value: 0.1}\nhierarchy:\n  trees:\n    - feature_index: 9", 6)]
    [InlineData("firing_probabilities: {kind: constant, value: 0.1}\ncorrelation: {kind: pairs, pairs: [[0, 0, 0.5]]}", 5)]
    [InlineData("firing_probabilities: {kind: constant, value: 0.1}\nmean_magnitudes: {kind: cubic}", 5)]
    [InlineData("firing_probabilities: {kind: constant, value: \"high\"}", 4)]
    public void ConfigErrorsNameTheYamlLine(string body, int line)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.yaml");
        File.WriteAllText(path, "num_features: 4\nhidden_dim: 8\nseed: 1\n" + body + "\n");
        var r = CliRunner.Run("synth", "build", "--config", path, "--out", dir.File("m"));
        Assert.Equal(1, r.Code);
        Assert.Contains($"{path} line {line}", r.Err);
    }
}
