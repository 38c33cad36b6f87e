using System.Collections;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Saes;

/// <summary>Named parameter tensors in a fixed order, so an optimiser can walk any architecture generically.</summary>
public sealed class SaeParams : IEnumerable<KeyValuePair<string, Tensor>>
{
    private readonly List<KeyValuePair<string, Tensor>> _items = [];

    public Tensor this[string name] =>
        _items.Find(p => p.Key == name).Value ?? throw new KeyNotFoundException($"SAE has no parameter '{name}'");

    public bool Contains(string name) => _items.Exists(p => p.Key == name);
    public IEnumerable<string> Names => _items.Select(p => p.Key);

    public void Add(string name, Tensor t)
    {
        if (Contains(name)) throw new ArgumentException($"parameter '{name}' added twice");
        _items.Add(new(name, t));
    }

    /// <summary>A parameter set with the same names and shapes, all zeros (a gradient buffer).</summary>
    public SaeParams ZerosLike()
    {
        var g = new SaeParams();
        foreach (var (n, t) in _items) g.Add(n, new Tensor(t.Shape.ToArray()));
        return g;
    }

    public void Clear(Compute compute) { foreach (var (_, t) in _items) Ops.Clear(t, compute); }

    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => _items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
