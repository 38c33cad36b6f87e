using System.Text.Json;
using System.Text.Json.Nodes;
using SaeSharp.Tensors;

namespace SaeSharp.Synthetic;

/// <summary>
/// A node of a feature hierarchy (after Noa Nabeshima's Matryoshka toy model, as in SAELens): a child feature is
/// zeroed when its parent is off; with <see cref="MutuallyExclusiveChildren"/> at most one child stays on.
/// A node without a feature index only groups its children (it is "on" whenever its own parent is).
/// </summary>
public sealed class HierarchyNode
{
    public int? FeatureIndex { get; }
    public List<HierarchyNode> Children { get; }
    public bool MutuallyExclusiveChildren { get; }
    public string? Id { get; }

    public HierarchyNode(int? featureIndex = null, IEnumerable<HierarchyNode>? children = null, bool mutuallyExclusiveChildren = false, string? id = null)
    {
        if (featureIndex < 0) throw new ArgumentOutOfRangeException(nameof(featureIndex), $"feature_index must be non-negative, got {featureIndex}");
        FeatureIndex = featureIndex;
        Children = children?.ToList() ?? [];
        MutuallyExclusiveChildren = mutuallyExclusiveChildren;
        Id = id;
        if (mutuallyExclusiveChildren && Children.Count < 2)
            throw new ArgumentException($"node ({Describe()}): mutually exclusive children need at least 2 children, got {Children.Count}");
    }

    public string Describe() => FeatureIndex is int f ? $"feature_index={f}" : Id is not null ? $"id={Id}" : "unnamed node";

    /// <summary>Feature indices of this node and all its descendants, depth first.</summary>
    public List<int> AllFeatureIndices()
    {
        var list = new List<int>();
        var stack = new Stack<HierarchyNode>();
        var seen = new HashSet<HierarchyNode>(ReferenceEqualityComparer.Instance);
        stack.Push(this);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (!seen.Add(n)) continue; // guards against loops; Validate reports them
            if (n.FeatureIndex is int f) list.Add(f);
            for (int i = n.Children.Count - 1; i >= 0; i--) stack.Push(n.Children[i]);
        }
        return list;
    }

    /// <summary>{"feature_index", "children", "mutually_exclusive_children", "id"}, keys omitted when default.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject();
        if (FeatureIndex is int f) o["feature_index"] = f;
        if (Children.Count > 0) o["children"] = new JsonArray(Children.Select(c => (JsonNode)c.ToJson()).ToArray());
        if (MutuallyExclusiveChildren) o["mutually_exclusive_children"] = true;
        if (Id is not null) o["id"] = Id;
        return o;
    }

    /// <summary>A node from its JSON object; a bare non-negative integer is a leaf node for that feature.</summary>
    public static HierarchyNode FromJson(JsonNode? node, string where = "hierarchy")
    {
        if (node is JsonValue leaf && leaf.GetValueKind() == JsonValueKind.Number)
        {
            if (!leaf.TryGetValue(out int f) || f < 0) throw new InvalidDataException($"{where}: a leaf must be a non-negative feature index, got {leaf.ToJsonString()}");
            return new HierarchyNode(f);
        }
        if (node is not JsonObject o) throw new InvalidDataException($"{where}: expected a JSON object for a hierarchy node (or a feature index for a leaf)");
        foreach (var kv in o)
            if (kv.Key is not ("feature_index" or "children" or "mutually_exclusive_children" or "id"))
                throw new InvalidDataException($"{where}: unknown key '{kv.Key}' (expected feature_index, children, mutually_exclusive_children, id)");
        int? fi = null;
        if (o["feature_index"] is JsonNode fn && fn.GetValueKind() != JsonValueKind.Null)
        {
            if (fn.GetValueKind() != JsonValueKind.Number || !fn.AsValue().TryGetValue(out int v) || v < 0)
                throw new InvalidDataException($"{where}.feature_index: expected a non-negative integer, got {fn.ToJsonString()}");
            fi = v;
        }
        var children = new List<HierarchyNode>();
        if (o["children"] is JsonNode cn)
        {
            if (cn is not JsonArray arr) throw new InvalidDataException($"{where}.children: expected an array");
            for (int i = 0; i < arr.Count; i++) children.Add(FromJson(arr[i], $"{where}.children[{i}]"));
        }
        bool me = false;
        if (o["mutually_exclusive_children"] is JsonNode mn)
        {
            if (mn.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
                throw new InvalidDataException($"{where}.mutually_exclusive_children: expected true or false");
            me = mn.GetValue<bool>();
        }
        string? id = null;
        if (o["id"] is JsonNode idn && idn.GetValueKind() != JsonValueKind.Null)
        {
            if (idn.GetValueKind() != JsonValueKind.String) throw new InvalidDataException($"{where}.id: expected a string");
            id = idn.GetValue<string>();
        }
        if (me && children.Count < 2)
            throw new InvalidDataException($"{where}: mutually_exclusive_children needs at least 2 children, got {children.Count}");
        return new HierarchyNode(fi, children, me, id);
    }
}

/// <summary>Validation, JSON files, random forests and firing-probability compensation for hierarchies.</summary>
public static class Hierarchy
{
    /// <summary>
    /// Throws unless the forest has no loops, no node with two parents (or appearing twice), no feature index in two
    /// trees, and (when <paramref name="numFeatures"/> is given) every index below it.
    /// </summary>
    public static void Validate(IReadOnlyList<HierarchyNode> roots, int? numFeatures = null)
    {
        var seen = new HashSet<HierarchyNode>(ReferenceEqualityComparer.Instance);
        foreach (var root in roots)
        {
            if (!seen.Add(root)) throw new ArgumentException($"node ({root.Describe()}) has multiple parents: each node must have at most one parent");
            Walk(root, new HashSet<HierarchyNode>(ReferenceEqualityComparer.Instance) { root }, seen);
        }
        var owner = new Dictionary<int, int>();
        for (int t = 0; t < roots.Count; t++)
            foreach (int f in roots[t].AllFeatureIndices())
            {
                if (numFeatures is int n && f >= n) throw new ArgumentException($"hierarchy feature_index {f} is out of range for {n} features");
                if (owner.TryGetValue(f, out int other) && other != t)
                    throw new ArgumentException($"feature index {f} appears in hierarchy trees {other} and {t}: each feature may belong to at most one tree");
                owner[f] = t;
            }
    }

    private static void Walk(HierarchyNode node, HashSet<HierarchyNode> ancestors, HashSet<HierarchyNode> seen)
    {
        foreach (var c in node.Children)
        {
            if (ancestors.Contains(c)) throw new ArgumentException($"loop detected: node ({c.Describe()}) is its own ancestor");
            if (!seen.Add(c)) throw new ArgumentException($"node ({c.Describe()}) has multiple parents: each node must have at most one parent");
            ancestors.Add(c);
            Walk(c, ancestors, seen);
            ancestors.Remove(c);
        }
    }

    public static JsonArray ToJson(IEnumerable<HierarchyNode> roots) => new(roots.Select(r => (JsonNode)r.ToJson()).ToArray());

    public static List<HierarchyNode> FromJson(JsonNode? node, string where = "hierarchy")
    {
        if (node is not JsonArray arr) throw new InvalidDataException($"{where}: expected a JSON array of root nodes");
        var roots = new List<HierarchyNode>();
        for (int i = 0; i < arr.Count; i++) roots.Add(HierarchyNode.FromJson(arr[i], $"{where}[{i}]"));
        try { Validate(roots); }
        catch (ArgumentException e) { throw new InvalidDataException($"{where}: {e.Message}", e); }
        return roots;
    }

    public static void Save(string path, IEnumerable<HierarchyNode> roots) =>
        IO.AtomicFile.WriteAllText(path, ToJson(roots).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    public static List<HierarchyNode> Load(string path)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e); }
        return FromJson(node, path);
    }

    /// <summary>
    /// A random forest of <paramref name="roots"/> trees whose nodes each carry a feature: every internal node has a
    /// branching factor drawn uniformly from [minBranching, maxBranching], leaves sit <paramref name="depth"/> edges
    /// below their root, and each internal node's children are mutually exclusive with probability
    /// <paramref name="mutuallyExclusiveShare"/>. Features are assigned breadth first from <paramref name="firstFeature"/>,
    /// so roots get the lowest indices (the most frequent features of a zipfian profile).
    /// </summary>
    public static List<HierarchyNode> RandomForest(int roots, int minBranching, int maxBranching, int depth, double mutuallyExclusiveShare,
        Rng rng, int firstFeature = 0, int? numFeatures = null)
    {
        if (roots < 0) throw new ArgumentOutOfRangeException(nameof(roots), $"roots must be non-negative, got {roots}");
        if (minBranching < 1 || maxBranching < minBranching) throw new ArgumentException($"branching range [{minBranching}, {maxBranching}] must satisfy 1 <= min <= max");
        if (depth < 0) throw new ArgumentOutOfRangeException(nameof(depth), $"depth must be non-negative, got {depth}");
        if (!(mutuallyExclusiveShare >= 0 && mutuallyExclusiveShare <= 1)) throw new ArgumentOutOfRangeException(nameof(mutuallyExclusiveShare), $"mutually exclusive share must be in [0, 1], got {mutuallyExclusiveShare}");
        if (mutuallyExclusiveShare > 0 && maxBranching < 2) throw new ArgumentException("mutually exclusive groups need a branching factor of at least 2");
        // Shape first (breadth first, level by level), then indices, so the numbering is breadth first across the forest.
        var level = new List<Shape>();
        var all = new List<Shape>();
        for (int r = 0; r < roots; r++) { var s = new Shape(); level.Add(s); all.Add(s); }
        for (int d = 0; d < depth; d++)
        {
            var next = new List<Shape>();
            foreach (var s in level)
            {
                int b = minBranching + rng.NextInt(maxBranching - minBranching + 1);
                for (int c = 0; c < b; c++) { var child = new Shape(); s.Children.Add(child); next.Add(child); all.Add(child); }
                s.Exclusive = b >= 2 && rng.NextDouble() < mutuallyExclusiveShare;
            }
            level = next;
        }
        for (int i = 0; i < all.Count; i++) all[i].Index = firstFeature + i;
        if (numFeatures is int n && firstFeature + all.Count > n)
            throw new ArgumentException($"the random hierarchy needs {all.Count} features from index {firstFeature}, but there are only {n}");
        return all.Take(roots).Select(Build).ToList();
    }

    private sealed class Shape { public List<Shape> Children { get; } = []; public bool Exclusive; public int Index; }

    private static HierarchyNode Build(Shape s) => new(s.Index, s.Children.Select(Build), s.Exclusive);

    /// <summary>
    /// Raises the base firing probabilities of hierarchy features so that, after the hierarchy zeroes children of inactive
    /// parents and resolves mutually exclusive groups, each feature's marginal firing rate is (approximately) its
    /// target. Assumes independent firing; a child's base rate is target / (P(parent on) · P(it survives exclusion)),
    /// capped at 1, iterated to a fixed point because exclusion depends on the siblings' base rates.
    /// </summary>
    public static float[] CompensateFiringProbabilities(float[] targets, IReadOnlyList<HierarchyNode> roots, int iterations = 30)
    {
        Validate(roots, targets.Length);
        var p = (float[])targets.Clone();
        for (int it = 0; it < iterations; it++)
            foreach (var r in roots) Compensate(r, 1.0, 1.0, targets, p);
        return p;
    }

    private static void Compensate(HierarchyNode node, double parentOn, double survival, float[] targets, float[] p)
    {
        double on = parentOn;
        if (node.FeatureIndex is int f)
        {
            double denom = parentOn * survival;
            p[f] = denom <= 0 ? 1f : (float)Math.Min(1.0, targets[f] / denom);
            on = Math.Min((double)p[f] * denom, 1.0);
        }
        var kids = node.Children;
        var features = kids.Where(c => c.FeatureIndex is not null).Select(c => (double)p[c.FeatureIndex!.Value]).ToArray();
        int fi = 0;
        foreach (var c in kids)
        {
            double s = 1;
            if (node.MutuallyExclusiveChildren && c.FeatureIndex is not null)
            {
                s = SurvivalAmongSiblings(features, fi);
                fi++;
            }
            Compensate(c, on, s, targets, p);
        }
    }

    /// <summary>E[1 / (1 + K)] where K counts the other siblings that fire (independent Bernoullis).</summary>
    internal static double SurvivalAmongSiblings(double[] probs, int self)
    {
        var dist = new double[probs.Length];
        dist[0] = 1;
        int count = 0;
        for (int i = 0; i < probs.Length; i++)
        {
            if (i == self) continue;
            count++;
            for (int k = count; k >= 1; k--) dist[k] = dist[k] * (1 - probs[i]) + dist[k - 1] * probs[i];
            dist[0] *= 1 - probs[i];
        }
        double e = 0;
        for (int k = 0; k <= count; k++) e += dist[k] / (k + 1);
        return e;
    }
}

/// <summary>
/// Applies a validated hierarchy forest to activations in place. With <see cref="ScaleChildrenByParent"/>, an active
/// child's activation is multiplied by its parent feature's activation (applied top down).
/// </summary>
public sealed class HierarchyModifier : IActivationModifier
{
    public IReadOnlyList<HierarchyNode> Roots { get; }
    public bool ScaleChildrenByParent { get; }
    private readonly int _maxIndex;

    // The forest flattened in preorder: node i's feature (-1 for a grouping node), its parent's position (-1 for a
    // root), the end of its subtree, and for mutually exclusive nodes the positions of its children.
    private readonly int[] _feature, _parent, _subtreeEnd;
    private readonly int[]?[] _exclusiveChildren;
    // The features below node i as runs of consecutive indices: runs [_runStart[i], _runStart[i+1]) of (_runFeature,
    // _runLength). Random forests number features level by level, so a subtree is one run per level and zeroing an
    // inactive one is a few block clears instead of a write per descendant.
    private readonly int[] _runStart, _runFeature, _runLength;

    public HierarchyModifier(IReadOnlyList<HierarchyNode> roots, bool scaleChildrenByParent = false)
    {
        Hierarchy.Validate(roots);
        Roots = roots.ToList();
        ScaleChildrenByParent = scaleChildrenByParent;
        _maxIndex = roots.SelectMany(r => r.AllFeatureIndices()).DefaultIfEmpty(-1).Max();
        var feature = new List<int>(); var parent = new List<int>(); var end = new List<int>(); var exclusive = new List<int[]?>();
        int Flatten(HierarchyNode node, int parentPos)
        {
            int pos = feature.Count;
            feature.Add(node.FeatureIndex ?? -1); parent.Add(parentPos); end.Add(0); exclusive.Add(null);
            var children = node.Children.Select(c => Flatten(c, pos)).ToArray();
            if (node.MutuallyExclusiveChildren) exclusive[pos] = children;
            end[pos] = feature.Count;
            return pos;
        }
        foreach (var r in Roots) Flatten(r, -1);
        _feature = feature.ToArray(); _parent = parent.ToArray(); _subtreeEnd = end.ToArray(); _exclusiveChildren = exclusive.ToArray();
        var runStart = new List<int> { 0 }; var runFeature = new List<int>(); var runLength = new List<int>();
        for (int i = 0; i < _feature.Length; i++)
        {
            var below = new List<int>();
            for (int d = i + 1; d < _subtreeEnd[i]; d++) if (_feature[d] >= 0) below.Add(_feature[d]);
            below.Sort();
            for (int t = 0; t < below.Count;)
            {
                int u = t + 1;
                while (u < below.Count && below[u] == below[u - 1] + 1) u++;
                runFeature.Add(below[t]); runLength.Add(u - t);
                t = u;
            }
            runStart.Add(runFeature.Count);
        }
        _runStart = runStart.ToArray(); _runFeature = runFeature.ToArray(); _runLength = runLength.ToArray();
    }

    /// <summary>
    /// Walks the flattened forest in preorder, top down: an inactive node's whole subtree is zeroed and skipped; an
    /// active mutually exclusive node keeps one uniformly chosen active child (children with a feature, in order).
    /// </summary>
    public void Apply(Tensor activations, Rng rng)
    {
        CheckWidth(activations.Cols);
        var value = new float[_feature.Length];
        var on = new List<int>();
        for (int r = 0; r < activations.Rows; r++) WalkRow(activations.Row(r), rng, value, on);
    }

    /// <summary>
    /// <see cref="Apply"/> for rows held sparsely (feature lists, ascending, and their values), with the same draws:
    /// each row is spread into <paramref name="denseRow"/> (num_features zeros, left zeroed), walked, and read back.
    /// The walk only zeroes or scales, so no feature outside a row's list becomes non-zero.
    /// </summary>
    internal void ApplySparse(Span<List<int>> features, Span<List<float>> values, Rng rng, float[] denseRow)
    {
        CheckWidth(denseRow.Length);
        var value = new float[_feature.Length];
        var on = new List<int>();
        for (int r = 0; r < features.Length; r++)
        {
            var idx = features[r]; var val = values[r];
            for (int t = 0; t < idx.Count; t++) denseRow[idx[t]] = val[t];
            WalkRow(denseRow, rng, value, on);
            for (int t = 0; t < idx.Count; t++) { val[t] = denseRow[idx[t]]; denseRow[idx[t]] = 0; }
        }
    }

    private void CheckWidth(int features)
    {
        if (_maxIndex >= features)
            throw new ArgumentException($"hierarchy uses feature index {_maxIndex} but activations have {features} features");
    }

    private void WalkRow(Span<float> row, Rng rng, float[] value, List<int> on)
    {
        int nodes = _feature.Length;
        for (int i = 0; i < nodes;)
        {
            int f = _feature[i], p = _parent[i];
            bool active;
            if (f >= 0)
            {
                if (ScaleChildrenByParent && p >= 0) row[f] *= value[p];
                active = row[f] > 0;
                value[i] = row[f];
            }
            else { active = true; value[i] = p >= 0 ? value[p] : 1f; }
            if (!active)
            {
                for (int u = _runStart[i]; u < _runStart[i + 1]; u++) row.Slice(_runFeature[u], _runLength[u]).Clear();
                i = _subtreeEnd[i];
                continue;
            }
            if (_exclusiveChildren[i] is { } children)
            {
                on.Clear();
                foreach (int c in children) if (_feature[c] >= 0 && row[_feature[c]] > 0) on.Add(_feature[c]);
                if (on.Count > 1)
                {
                    int keep = on[rng.NextInt(on.Count)];
                    foreach (int cf in on) if (cf != keep) row[cf] = 0;
                }
            }
            i++;
        }
    }
}
