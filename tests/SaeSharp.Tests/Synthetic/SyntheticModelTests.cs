using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class SyntheticModelTests
{
    [Fact]
    public void ToyPresetBuildsAndSamples()
    {
        var m = SyntheticModel.BuildPreset("toy", compute: Compute.All);
        Assert.Equal(64, m.Dictionary.NumFeatures);
        Assert.Equal(32, m.Dictionary.HiddenDim);
        Assert.NotEmpty(m.Hierarchy);
        Assert.IsType<FullCorrelation>(m.Generator.Correlation);
        var (f, h) = m.Sample(256, new Rng(1), compute: Compute.All);
        f.EnsureShape("features", 256, 64);
        h.EnsureShape("hidden", 256, 32);
        double l0 = SyntheticEvals.MeanL0(f);
        Assert.InRange(l0, 1, 20);
        // The hidden activations are exactly f·V (+ zero bias).
        var dense = m.Dictionary.Forward(f, Compute.All);
        for (int i = 0; i < h.Length; i++) Assert.Equal(dense.Span[i], h.Span[i], 4);
        // Same seed, same model.
        Assert.Equal(m.Dictionary.FeatureVectors.ToArray(), SyntheticModel.BuildPreset("toy", compute: Compute.All).Dictionary.FeatureVectors.ToArray());
    }

    [Fact]
    public void SaveLoadRoundTripReproducesSamples()
    {
        var m = SyntheticModel.BuildPreset("toy", seed: 7, compute: Compute.All);
        var dir = Directory.CreateTempSubdirectory("synth-model");
        try
        {
            m.Save(dir.FullName);
            Assert.True(File.Exists(Path.Combine(dir.FullName, SyntheticModel.ConfigFile)));
            Assert.True(File.Exists(Path.Combine(dir.FullName, SyntheticModel.HierarchyFile)));
            var back = SyntheticModel.Load(dir.FullName);
            Assert.Equal(m.Config.ToJson(), back.Config.ToJson());
            Assert.Equal(m.Dictionary.FeatureVectors.ToArray(), back.Dictionary.FeatureVectors.ToArray());
            var (fa, ha) = m.Sample(100, new Rng(3), compute: Compute.All);
            var (fb, hb) = back.Sample(100, new Rng(3), compute: Compute.All);
            Assert.Equal(fa.ToArray(), fb.ToArray());
            Assert.Equal(ha.ToArray(), hb.ToArray());
            Assert.Empty(Directory.GetFiles(dir.FullName, "*.tmp"));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void LowRankModelRoundTrips()
    {
        var cfg = SyntheticModel.Preset("toy") with { Correlation = new CorrelationSpec("low_rank", Rank: 3, Scale: 0.2), Bias = "random_unit" };
        var m = SyntheticModel.Build(cfg, compute: Compute.All);
        var dir = Directory.CreateTempSubdirectory("synth-model");
        try
        {
            m.Save(dir.FullName);
            var back = SyntheticModel.Load(dir.FullName);
            Assert.IsType<LowRankCorrelation>(back.Generator.Correlation);
            Assert.Equal(m.Dictionary.Bias.ToArray(), back.Dictionary.Bias.ToArray());
            Assert.Equal(m.Sample(50, new Rng(4), compute: Compute.All).Features.ToArray(), back.Sample(50, new Rng(4), compute: Compute.All).Features.ToArray());
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void CompensationChangesBaseButNotTargetProbabilities()
    {
        var cfg = SyntheticModel.Preset("toy");
        var plain = SyntheticModel.Build(cfg, compute: Compute.All);
        var comp = SyntheticModel.Build(cfg with { Hierarchy = cfg.Hierarchy! with { CompensateFiring = true } }, compute: Compute.All);
        Assert.Equal(plain.TargetFiringProbabilities, comp.TargetFiringProbabilities);
        int child = plain.Hierarchy[0].Children[0].FeatureIndex!.Value;
        Assert.True(comp.Generator.FiringProbabilities[child] > plain.Generator.FiringProbabilities[child]);
    }

    [Fact]
    public void BenchPresetConfigMatchesSpecification()
    {
        var c = SyntheticModel.Preset("synth-sae-bench-16k");
        Assert.Equal(16_384, c.NumFeatures);
        Assert.Equal(768, c.HiddenDim);
        Assert.Equal(new ProfileSpec("zipfian", Exponent: 0.5, Min: 5e-4, Max: 0.4), c.FiringProbabilities);
        Assert.Equal(25, c.Correlation!.Rank);
        Assert.Equal(0.1, c.Correlation.Scale);
        Assert.Equal(new OrthogonalizeSpec(100, 3e-4), c.Orthogonalize);
        // The hierarchy alone is cheap to build: 128 trees of 1 + 4 + 16 + 64 features, all groups exclusive.
        var h = c.Hierarchy!;
        var forest = Hierarchy.RandomForest(h.Roots, h.MinBranching, h.MaxBranching, h.Depth, h.MutuallyExclusiveShare, new Rng(1), h.FirstFeature, c.NumFeatures);
        Assert.Equal(128 * 85, forest.Sum(r => r.AllFeatureIndices().Count));
        Assert.All(forest, r => Assert.True(r.MutuallyExclusiveChildren));
    }

    [Fact]
    public void BadConfigsGiveClearErrors()
    {
        Assert.Contains("unknown synthetic preset 'tiny'", Assert.Throws<ArgumentException>(() => SyntheticModel.Preset("tiny")).Message);
        var json = SyntheticModel.Preset("toy").ToJson().Replace("\"hidden_dim\"", "\"hiden_dim\"");
        Assert.Contains("hiden_dim", Assert.Throws<InvalidDataException>(() => SyntheticModelConfig.FromJson(json)).Message);
        var cfg = SyntheticModel.Preset("toy");
        Assert.Contains("config.firing_probabilities", Assert.Throws<ArgumentException>(() => SyntheticModel.Build(cfg with { FiringProbabilities = new ProfileSpec("zipfian", Exponent: 1) }, compute: Compute.All)).Message);
        Assert.Contains("config.mean_magnitudes", Assert.Throws<ArgumentException>(() => SyntheticModel.Build(cfg with { MeanMagnitudes = new ProfileSpec("cubic") }, compute: Compute.All)).Message);
        Assert.Contains("config.bias", Assert.Throws<ArgumentException>(() => SyntheticModel.Build(cfg with { Bias = "big" }, compute: Compute.All)).Message);
        Assert.Throws<FileNotFoundException>(() => SyntheticModel.Load(Path.Combine(Path.GetTempPath(), "no-such-synth-model-dir")));
    }

    [Fact]
    public void AModelAssembledFromADictionaryAndAGeneratorTrainsSavesAndLoads()
    {
        // As SAELens pairs FeatureDictionary(...) with ActivationGenerator(..., modify_activations=hierarchy_modifier(...)).
        var dictionary = FeatureDictionary.CreateRandom(6, 12, new Rng(1), orthogonalizeSteps: 50, compute: Compute.All);
        var tree = new HierarchyNode(0, [new HierarchyNode(1), new HierarchyNode(2)]);
        var generator = new ActivationGenerator(Profiles.Constant(6, 0.4), modifiers: [new HierarchyModifier([tree])]);
        var model = new SyntheticModel(dictionary, generator);
        Assert.Same(tree, Assert.Single(model.Hierarchy));
        Assert.Equal("explicit", model.Config.FiringProbabilities.Kind);
        Assert.Equal(generator.FiringProbabilities, model.TargetFiringProbabilities);

        var source = new SyntheticActivationSource(model, seed: 3, new Compute(1));
        var batch = new Tensor(64, 12);
        Assert.True(source.Next(batch));
        // Children fire only with their parent.
        var f = source.LastFeatures!.ToDense();
        for (int r = 0; r < f.Rows; r++) Assert.True(f[r, 0] > 0 || (f[r, 1] == 0 && f[r, 2] == 0));

        var dir = Directory.CreateTempSubdirectory("synth-parts").FullName;
        try
        {
            model.Save(dir);
            var back = SyntheticModel.Load(dir);
            Assert.Equal(dictionary.FeatureVectors.ToArray(), back.Dictionary.FeatureVectors.ToArray());
            Assert.Equal([0, 1, 2], Assert.Single(back.Hierarchy).AllFeatureIndices());
            var (a, _) = model.Sample(32, new Rng(9), compute: Compute.All);
            var (b, _) = back.Sample(32, new Rng(9), compute: Compute.All);
            Assert.Equal(a.ToArray(), b.ToArray());
        }
        finally { Directory.Delete(dir, true); }
        Assert.Throws<ArgumentException>(() => new SyntheticModel(FeatureDictionary.CreateRandom(5, 12, new Rng(1), compute: Compute.All), generator));
    }
}
