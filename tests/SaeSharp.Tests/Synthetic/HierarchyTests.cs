using System.Text.Json.Nodes;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class HierarchyTests
{
    // The modifier's rules written as the plain recursive walk over the nodes, the reference for the flattened walk.
    private static void ReferenceVisit(HierarchyNode node, Span<float> row, bool? parentActive, float parentValue, bool scale, Rng rng)
    {
        bool isActive;
        float value = parentValue;
        if (node.FeatureIndex is int f)
        {
            if (parentActive == false) row[f] = 0;
            else if (scale && parentActive == true) row[f] *= parentValue;
            isActive = row[f] > 0;
            value = row[f];
        }
        else isActive = parentActive ?? true;
        if (node.MutuallyExclusiveChildren && isActive)
        {
            var on = new List<int>();
            foreach (var c in node.Children) if (c.FeatureIndex is int cf && row[cf] > 0) on.Add(cf);
            if (on.Count > 1)
            {
                int keep = on[rng.NextInt(on.Count)];
                foreach (int cf in on) if (cf != keep) row[cf] = 0;
            }
        }
        foreach (var c in node.Children) ReferenceVisit(c, row, isActive, value, scale, rng);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FlattenedWalkEqualsTheRecursiveRules(bool scale)
    {
        var rng = new Rng(17);
        // Random forests with grouping (feature-less) nodes mixed in, and activations where about half fire.
        var forest = Hierarchy.RandomForest(6, 2, 4, 3, 0.5, rng, numFeatures: 400);
        forest.Add(new HierarchyNode(null, [new HierarchyNode(390), new HierarchyNode(391, [new HierarchyNode(392), new HierarchyNode(393)], true)], true));
        // Scattered indices: the subtree below 300 is zeroed in runs {250, 251}, {260}, {399}.
        forest.Add(new HierarchyNode(300, [new HierarchyNode(250, [new HierarchyNode(399), new HierarchyNode(251)]), new HierarchyNode(260)]));
        var acts = new Tensor(300, 400);
        for (int i = 0; i < acts.Length; i++) acts.Span[i] = rng.Bernoulli(0.5) ? 0.5f + (float)rng.NextDouble() : 0;
        var expected = acts.Clone();
        var refRng = new Rng(3);
        for (int r = 0; r < expected.Rows; r++)
            foreach (var root in forest) ReferenceVisit(root, expected.Row(r), null, 1f, scale, refRng);
        var modRng = new Rng(3);
        new HierarchyModifier(forest, scale).Apply(acts, modRng);
        Assert.Equal(expected.Span.ToArray(), acts.Span.ToArray());
        Assert.Equal(refRng.NextUInt64(), modRng.NextUInt64()); // the same draws, in the same order
    }

    private static IEnumerable<(HierarchyNode Parent, HierarchyNode Child)> Edges(HierarchyNode n)
    {
        foreach (var c in n.Children) { yield return (n, c); foreach (var e in Edges(c)) yield return e; }
    }

    [Fact]
    public void InvariantsHoldOnEverySample()
    {
        var rng = new Rng(1);
        var forest = Hierarchy.RandomForest(3, 2, 3, 2, 0.5, rng, firstFeature: 1, numFeatures: 60);
        Assert.Contains(forest.SelectMany(r => new[] { r }.Concat(Edges(r).Select(e => e.Child))), n => n.MutuallyExclusiveChildren);
        int used = forest.SelectMany(r => r.AllFeatureIndices()).Count();
        var gen = new ActivationGenerator(Profiles.Constant(60, 0.5), modifiers: [new HierarchyModifier(forest)]);
        var acts = gen.Sample(3000, new Rng(2), compute: Compute.All);
        int childFired = 0;
        for (int r = 0; r < acts.Rows; r++)
            foreach (var root in forest)
                foreach (var (p, c) in Edges(root))
                {
                    if (acts[r, c.FeatureIndex!.Value] > 0) { childFired++; Assert.True(acts[r, p.FeatureIndex!.Value] > 0, "child active while parent is off"); }
                    if (p.MutuallyExclusiveChildren)
                        Assert.True(p.Children.Count(k => acts[r, k.FeatureIndex!.Value] > 0) <= 1, "two mutually exclusive siblings active");
                }
        Assert.True(childFired > 1000);
        Assert.True(used > 10);
    }

    [Fact]
    public void MutuallyExclusiveWinnersAreUniform()
    {
        var root = new HierarchyNode(0, Enumerable.Range(1, 4).Select(i => new HierarchyNode(i)), mutuallyExclusiveChildren: true);
        var gen = new ActivationGenerator(Profiles.Constant(5, 1.0), modifiers: [new HierarchyModifier([root])]);
        const int n = 8000;
        var acts = gen.Sample(n, new Rng(3), compute: Compute.All);
        var counts = new double[4];
        for (int r = 0; r < n; r++)
        {
            int active = 0;
            for (int k = 1; k <= 4; k++) if (acts[r, k] > 0) { counts[k - 1]++; active++; }
            Assert.Equal(1, active);
        }
        double chi2 = counts.Sum(c => (c - n / 4.0) * (c - n / 4.0) / (n / 4.0));
        Assert.True(chi2 < 16.27, $"chi-square {chi2} over the 0.1% critical value for 3 dof"); // P(χ²₃ > 16.27) = 0.001
    }

    [Fact]
    public void ChildrenOfInactiveParentAreZeroedAndOrganisationalNodesPassThrough()
    {
        // Root 0 never fires; its children must never fire. Node without a feature groups 3 and 4 under "always on".
        var a = new HierarchyNode(0, [new HierarchyNode(1), new HierarchyNode(2, [new HierarchyNode(5)])]);
        var b = new HierarchyNode(null, [new HierarchyNode(3), new HierarchyNode(4)], id: "group");
        var gen = new ActivationGenerator([0f, 1f, 1f, 1f, 1f, 1f], modifiers: [new HierarchyModifier([a, b])]);
        var acts = gen.Sample(50, new Rng(4), compute: Compute.All);
        for (int r = 0; r < 50; r++)
        {
            Assert.Equal(0f, acts[r, 1]); Assert.Equal(0f, acts[r, 2]); Assert.Equal(0f, acts[r, 5]);
            Assert.Equal(1f, acts[r, 3]); Assert.Equal(1f, acts[r, 4]);
        }
    }

    [Fact]
    public void ScalingChildrenByParentMultiplies()
    {
        var root = new HierarchyNode(0, [new HierarchyNode(1)]);
        var gen = new ActivationGenerator([1f, 1f], meanMagnitudes: [3f, 2f], modifiers: [new HierarchyModifier([root], scaleChildrenByParent: true)]);
        var acts = gen.Sample(4, new Rng(1), compute: Compute.All);
        Assert.Equal(6f, acts[0, 1]);
    }

    [Fact]
    public void ValidationRejectsLoopsTwoParentsAndSharedIndices()
    {
        var loopy = new HierarchyNode(0, [new HierarchyNode(1)]);
        loopy.Children[0].Children.Add(loopy);
        Assert.Contains("loop", Assert.Throws<ArgumentException>(() => Hierarchy.Validate([loopy])).Message);

        var shared = new HierarchyNode(2);
        var twoParents = new HierarchyNode(0, [new HierarchyNode(1, [shared]), new HierarchyNode(3, [shared])]);
        Assert.Contains("multiple parents", Assert.Throws<ArgumentException>(() => new HierarchyModifier([twoParents])).Message);

        var t1 = new HierarchyNode(0, [new HierarchyNode(1)]);
        var t2 = new HierarchyNode(2, [new HierarchyNode(1)]);
        Assert.Contains("feature index 1", Assert.Throws<ArgumentException>(() => Hierarchy.Validate([t1, t2])).Message);

        Assert.Contains("at least 2 children", Assert.Throws<ArgumentException>(() => new HierarchyNode(0, [new HierarchyNode(1)], mutuallyExclusiveChildren: true)).Message);
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() => Hierarchy.Validate([t1], numFeatures: 1)).Message);
        Assert.Throws<ArgumentException>(() => new HierarchyModifier([t2]).Apply(new Tensor(2, 2), new Rng(1)));
    }

    [Fact]
    public void JsonRoundTripAndErrors()
    {
        var forest = Hierarchy.RandomForest(2, 2, 3, 2, 0.5, new Rng(5));
        var json = Hierarchy.ToJson(forest).ToJsonString();
        var back = Hierarchy.FromJson(JsonNode.Parse(json));
        Assert.Equal(json, Hierarchy.ToJson(back).ToJsonString());
        var dir = Directory.CreateTempSubdirectory("synth-h");
        try
        {
            string path = Path.Combine(dir.FullName, "hierarchy.json");
            Hierarchy.Save(path, forest);
            Assert.Equal(json, Hierarchy.ToJson(Hierarchy.Load(path)).ToJsonString());
        }
        finally { dir.Delete(true); }
        Assert.Contains("unknown key 'child'", Assert.Throws<InvalidDataException>(() => Hierarchy.FromJson(JsonNode.Parse("""[{"feature_index":0,"child":[]}]"""))).Message);
        Assert.Contains("[0].children[0].feature_index", Assert.Throws<InvalidDataException>(() => Hierarchy.FromJson(JsonNode.Parse("""[{"children":[{"feature_index":-2}]}]"""))).Message);
        Assert.Contains("feature index 1", Assert.Throws<InvalidDataException>(() => Hierarchy.FromJson(JsonNode.Parse("""[{"feature_index":1},{"feature_index":1}]"""))).Message);
        Assert.Contains("at least 2", Assert.Throws<InvalidDataException>(() => Hierarchy.FromJson(JsonNode.Parse("""[{"mutually_exclusive_children":true,"children":[{"feature_index":1}]}]"""))).Message);
    }

    [Fact]
    public void RandomForestShape()
    {
        var forest = Hierarchy.RandomForest(4, 3, 3, 2, 1.0, new Rng(6), firstFeature: 10);
        Assert.Equal(4, forest.Count);
        var all = forest.SelectMany(r => r.AllFeatureIndices()).OrderBy(i => i).ToArray();
        Assert.Equal(Enumerable.Range(10, 4 * (1 + 3 + 9)), all);
        Assert.Equal([10, 11, 12, 13], forest.Select(r => r.FeatureIndex!.Value)); // roots numbered first
        Assert.All(forest, r => Assert.True(r.MutuallyExclusiveChildren));
        Assert.Throws<ArgumentException>(() => Hierarchy.RandomForest(4, 3, 3, 2, 0.5, new Rng(6), numFeatures: 20));
        Assert.Throws<ArgumentException>(() => Hierarchy.RandomForest(1, 3, 2, 2, 0.5, new Rng(6)));
    }

    [Fact]
    public void CompensationRestoresTargetFiringRates()
    {
        var forest = Hierarchy.RandomForest(2, 3, 3, 2, 0.5, new Rng(7));
        int n = forest.SelectMany(r => r.AllFeatureIndices()).Count();
        var targets = Enumerable.Range(0, n).Select(i => i < 2 ? 0.5f : i < 8 ? 0.1f : 0.02f).ToArray();
        // Feasible targets: each group of 3 siblings needs at most its parent's rate (3·0.1 ≤ 0.5, 3·0.02 ≤ 0.1).
        var p = Hierarchy.CompensateFiringProbabilities(targets, forest);
        Assert.All(p.Zip(targets), x => Assert.True(x.First >= x.Second - 1e-7));
        const int samples = 40_000;
        var acts = new ActivationGenerator(p, modifiers: [new HierarchyModifier(forest)]).Sample(samples, new Rng(8), compute: Compute.All);
        for (int j = 0; j < n; j++)
        {
            double rate = 0;
            for (int r = 0; r < samples; r++) if (acts[r, j] > 0) rate++;
            rate /= samples;
            Assert.True(Math.Abs(targets[j] - rate) < 0.015, $"feature {j}: target {targets[j]}, base {p[j]}, rate {rate}");
        }
    }
}
