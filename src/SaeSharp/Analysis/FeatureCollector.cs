using System.Runtime.InteropServices;
using SaeSharp.Tensors;

namespace SaeSharp.Analysis;

/// <summary>
/// Collects every latent's statistics, top activating positions and interval samples from a stream of batches of
/// latent codes, in memory bounded by the number of latents (never [positions, d_sae]).
/// <para>
/// <see cref="Add"/> (one call per batch, in order) counts firings, sums and extremes and keeps each latent's top
/// activations with their context; it also appends the batch's firing codes to a spill file. The histogram bins and
/// the quantile intervals are fractions of a latent's final maximum, which is known only after the last batch, so
/// <see cref="Finish"/> reads the spill back once to bin every firing and draw the interval samples (bottom-k of a
/// seeded hash key per firing: a uniform sample without replacement, independent of batching and threads).
/// </para>
/// Work is split over latents in fixed ranges, so results do not depend on the thread count.
/// </summary>
public sealed class FeatureCollector : IDisposable
{
    private readonly int _dSae;
    private readonly FeatureAnalysisOptions _options;
    private readonly Compute _compute;
    private readonly long[] _fires;
    private readonly double[] _sums;
    private readonly float[] _max, _min;
    private readonly List<Candidate>[] _top;
    private readonly string _spillPath;
    private readonly int[]? _latentIds;
    private FileStream? _spill;
    private long _positions, _sequences;

    /// <param name="spillPath">A file the firing codes are spilled to between the two passes (deleted on Dispose).</param>
    /// <param name="latentIds">The SAE latent each column of the codes is (a subset's), so its interval samples are the
    /// ones the whole SAE's collection draws for it; null: column j is latent j.</param>
    public FeatureCollector(int dSae, FeatureAnalysisOptions options, string spillPath, Compute compute, IReadOnlyList<int>? latentIds = null)
    {
        options.Validate();
        if (latentIds is not null && latentIds.Count != dSae) throw new ArgumentException($"{latentIds.Count} latent ids for {dSae} columns");
        _latentIds = latentIds?.ToArray();
        _dSae = dSae;
        _options = options;
        _compute = compute;
        _fires = new long[dSae];
        _sums = new double[dSae];
        _max = new float[dSae];
        _min = Enumerable.Repeat(float.PositiveInfinity, dSae).ToArray();
        _top = Enumerable.Range(0, dSae).Select(_ => new List<Candidate>()).ToArray();
        _spillPath = spillPath;
        _spill = new FileStream(spillPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20);
    }

    /// <summary>Positions counted so far (kept rows).</summary>
    public long Positions => _positions;
    public long Sequences => _sequences;
    /// <summary>Firings counted so far, over all latents.</summary>
    public long Firings { get; private set; }

    /// <summary>
    /// Adds one batch: <paramref name="codes"/> has one row per position of <paramref name="sequences"/> right-padded
    /// to <paramref name="seqLen"/> (row = sequence·seqLen + position, as <see cref="Evals.LatentBatch"/>); rows
    /// <paramref name="keep"/> leaves out count nowhere and show activation 0 in contexts.
    /// </summary>
    public void Add(SparseCodes codes, IReadOnlyList<int[]> sequences, int seqLen, ReadOnlySpan<bool> keep)
    {
        if (_spill is null) throw new InvalidOperationException("the collector has finished");
        if (codes.Cols != _dSae) throw new ArgumentException($"codes have {codes.Cols} latents, the collector {_dSae}");
        if (codes.Rows != sequences.Count * seqLen || keep.Length != codes.Rows)
            throw new ArgumentException($"{codes.Rows} code rows and {keep.Length} keep flags for {sequences.Count} sequences of {seqLen} positions");
        var firing = Firing(codes, keep);
        foreach (bool k in keep) if (k) _positions++;
        Firings += firing.Count;
        var batch = new Batch(firing, sequences, seqLen, _sequences);
        _compute.ForRange(_dSae, 64, (j0, j1) =>
        {
            for (int j = j0; j < j1; j++)
            {
                var (start, end) = batch.Column(j);
                for (int q = start; q < end; q++)
                {
                    float v = batch.Value(q);
                    _fires[j]++;
                    _sums[j] += v;
                    if (v > _max[j]) _max[j] = v;
                    if (v < _min[j]) _min[j] = v;
                    var top = _top[j];
                    // Later positions lose ties, so only a strictly larger activation displaces the last kept one.
                    if (top.Count == _options.TopExamples && !(v > top[^1].Value)) continue;
                    var c = batch.Context(j, q, _options.ContextTokens);
                    int at = top.Count;
                    while (at > 0 && top[at - 1].Value < v) at--;
                    top.Insert(at, c);
                    if (top.Count > _options.TopExamples) top.RemoveAt(top.Count - 1);
                }
            }
        });
        Spill.Write(_spill, firing, sequences, seqLen);
        _sequences += sequences.Count;
    }

    /// <summary>The collected statistics, histograms, top examples and quantile groups of every latent.</summary>
    public CollectedFeatures Finish(CancellationToken cancel = default)
    {
        if (_spill is null) throw new InvalidOperationException("the collector has finished");
        int bins = _options.HistogramBins, groups = _options.QuantileGroups, perGroup = _options.QuantileExamples;
        var histograms = new long[(long)_dSae * bins];
        var groupCounts = new long[(long)_dSae * groups];
        var samples = new List<Candidate>[(long)_dSae * groups];
        for (int i = 0; i < samples.Length; i++) samples[i] = [];
        _spill.Flush();
        _spill.Position = 0;
        long firstSequence = 0;
        while (Spill.Read(_spill, _dSae) is { } read)
        {
            cancel.ThrowIfCancellationRequested();
            var batch = new Batch(read.Codes, read.Sequences, read.SeqLen, firstSequence);
            _compute.ForRange(_dSae, 64, (j0, j1) =>
            {
                for (int j = j0; j < j1; j++)
                {
                    var (start, end) = batch.Column(j);
                    if (start == end) continue;
                    for (int q = start; q < end; q++)
                    {
                        float v = batch.Value(q);
                        histograms[(long)j * bins + Histogram.BinOf(v, _min[j], _max[j], bins)]++;
                        if (groups == 0) continue;
                        int g = IntervalOf(v, _max[j], groups);
                        groupCounts[(long)j * groups + g]++;
                        var (seq, pos) = batch.PositionOf(q);
                        ulong key = SampleKey(_options.Seed, seq, pos, _latentIds?[j] ?? j);
                        var list = samples[(long)j * groups + g];
                        if (list.Count == perGroup && key >= list[^1].Key) continue;
                        var c = batch.Context(j, q, _options.ContextTokens) with { Key = key };
                        int at = list.Count;
                        while (at > 0 && list[at - 1].Key > key) at--;
                        list.Insert(at, c);
                        if (list.Count > perGroup) list.RemoveAt(list.Count - 1);
                    }
                }
            });
            firstSequence += read.Sequences.Count;
        }
        Dispose();
        var features = new CollectedFeature[_dSae];
        for (int j = 0; j < _dSae; j++)
        {
            var quantiles = new CollectedGroup[groups];
            for (int g = 0; g < groups; g++)
                quantiles[g] = new CollectedGroup(g, (double)_max[j] * g / groups, (double)_max[j] * (g + 1) / groups,
                    groupCounts[(long)j * groups + g], samples[(long)j * groups + g]);
            bool fired = _fires[j] > 0;
            features[j] = new CollectedFeature(j, _fires[j], _sums[j], fired ? _max[j] : 0, fired ? _min[j] : 0,
                new Histogram(fired ? _min[j] : 0, fired ? _max[j] : 0, histograms.AsSpan((int)((long)j * bins), bins).ToArray()),
                _top[j], quantiles);
        }
        return new CollectedFeatures(features, _positions, _sequences);
    }

    /// <summary>
    /// The interval of <paramref name="v"/> among <paramref name="groups"/> equal intervals (lower, upper] of (0, max]:
    /// interval g spans (max·g/groups, max·(g+1)/groups], edges computed in float64.
    /// </summary>
    public static int IntervalOf(float v, float max, int groups)
    {
        if (!(max > 0)) return 0;
        int g = Math.Clamp((int)Math.Ceiling(v * (double)groups / max) - 1, 0, groups - 1);
        while (g > 0 && v <= (double)max * g / groups) g--;
        while (g < groups - 1 && v > (double)max * (g + 1) / groups) g++;
        return g;
    }

    /// <summary>The firing's sampling key: a splitmix64 hash of the seed, position and latent.</summary>
    public static ulong SampleKey(ulong seed, long sequence, int position, int latent)
    {
        ulong x = seed ^ ((ulong)sequence * 0x9E3779B97F4A7C15UL) ^ ((ulong)(uint)position << 32) ^ (ulong)(uint)latent * 0xC2B2AE3D27D4EB4FUL;
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    /// <summary>The entries of <paramref name="codes"/> that fire (activation &gt; 0) at kept rows.</summary>
    private static SparseCodes Firing(SparseCodes codes, ReadOnlySpan<bool> keep)
    {
        var counts = new int[codes.Rows];
        for (int r = 0; r < codes.Rows; r++)
        {
            if (!keep[r]) continue;
            foreach (float v in codes.RowValue(r)) if (v > 0) counts[r]++;
        }
        var firing = SparseCodes.FromRowCounts(codes.Cols, counts);
        for (int r = 0; r < codes.Rows; r++)
        {
            if (counts[r] == 0) continue;
            int o = firing.RowStart[r];
            var idx = codes.RowIndex(r); var val = codes.RowValue(r);
            for (int e = 0; e < idx.Length; e++)
                if (val[e] > 0) { firing.Index[o] = idx[e]; firing.Value[o++] = val[e]; }
        }
        return firing;
    }

    public void Dispose()
    {
        if (_spill is null) return;
        _spill.Dispose();
        _spill = null;
        try { File.Delete(_spillPath); } catch (IOException) { }
    }

    /// <summary>A batch's firing codes seen by latent: each latent's entries in ascending row order.</summary>
    private sealed class Batch
    {
        private readonly SparseCodes _codes;
        private readonly IReadOnlyList<int[]> _sequences;
        private readonly int _seqLen;
        private readonly long _firstSequence;
        private readonly int[] _colStart, _entry, _entryRow;

        public Batch(SparseCodes codes, IReadOnlyList<int[]> sequences, int seqLen, long firstSequence)
        {
            _codes = codes;
            _sequences = sequences;
            _seqLen = seqLen;
            _firstSequence = firstSequence;
            (_colStart, _entry) = codes.ByColumn();
            _entryRow = codes.EntryRows();
        }

        public (int Start, int End) Column(int j) => (_colStart[j], _colStart[j + 1]);
        public float Value(int q) => _codes.Value[_entry[q]];
        private int Row(int q) => _entryRow[_entry[q]];
        public (long Sequence, int Position) PositionOf(int q) => (_firstSequence + Row(q) / _seqLen, Row(q) % _seqLen);

        /// <summary>Latent j's firing at column entry q with its context window of ±radius positions and the latent's activations there.</summary>
        public Candidate Context(int j, int q, int radius)
        {
            int row = Row(q), b = row / _seqLen, p = row % _seqLen;
            var seq = _sequences[b];
            int lo = Math.Max(0, p - radius), hi = Math.Min(seq.Length - 1, p + radius);
            var acts = new float[hi - lo + 1];
            int first = b * _seqLen + lo, last = b * _seqLen + hi;
            var (start, end) = Column(j);
            for (int k = q; k >= start && Row(k) >= first; k--) acts[Row(k) - first] = Value(k);
            for (int k = q + 1; k < end && Row(k) <= last; k++) acts[Row(k) - first] = Value(k);
            return new Candidate(Value(q), _firstSequence + b, p, lo, seq[lo..(hi + 1)], acts);
        }
    }

    /// <summary>The firing codes and token windows of each batch, appended in order and read back once.</summary>
    private static class Spill
    {
        public sealed record Block(SparseCodes Codes, IReadOnlyList<int[]> Sequences, int SeqLen);

        public static void Write(Stream s, SparseCodes codes, IReadOnlyList<int[]> sequences, int seqLen)
        {
            Ints(s, [sequences.Count, seqLen, codes.Count]);
            foreach (var seq in sequences) { Ints(s, [seq.Length]); Ints(s, seq); }
            Ints(s, codes.RowStart);
            Ints(s, codes.Index.AsSpan(0, codes.Count));
            s.Write(MemoryMarshal.AsBytes(codes.Value.AsSpan(0, codes.Count)));
        }

        public static Block? Read(Stream s, int cols)
        {
            var head = new int[3];
            if (!TryFill(s, MemoryMarshal.AsBytes(head.AsSpan()))) return null;
            int n = head[0], seqLen = head[1], count = head[2];
            var sequences = new int[n][];
            var len = new int[1];
            for (int i = 0; i < n; i++)
            {
                Fill(s, MemoryMarshal.AsBytes(len.AsSpan()));
                sequences[i] = new int[len[0]];
                Fill(s, MemoryMarshal.AsBytes(sequences[i].AsSpan()));
            }
            var codes = new SparseCodes(n * seqLen, cols, count);
            Fill(s, MemoryMarshal.AsBytes(codes.RowStart.AsSpan()));
            Fill(s, MemoryMarshal.AsBytes(codes.Index.AsSpan(0, count)));
            Fill(s, MemoryMarshal.AsBytes(codes.Value.AsSpan(0, count)));
            return new Block(codes, sequences, seqLen);
        }

        private static void Ints(Stream s, ReadOnlySpan<int> v) => s.Write(MemoryMarshal.AsBytes(v));

        private static bool TryFill(Stream s, Span<byte> buffer)
        {
            int got = s.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            if (got == 0) return false;
            if (got < buffer.Length) throw new InvalidDataException("the analysis spill file ended mid-batch");
            return true;
        }

        private static void Fill(Stream s, Span<byte> buffer)
        {
            if (buffer.IsEmpty) return; // a batch without firings
            if (!TryFill(s, buffer)) throw new InvalidDataException("the analysis spill file ended mid-batch");
        }
    }
}

/// <summary>A kept firing: its activation, position, context window (tokens and the latent's activations) and sampling key.</summary>
public sealed record Candidate(float Value, long Sequence, int Position, int ContextStart, int[] TokenIds, float[] Acts)
{
    public ulong Key { get; init; }
}

/// <summary>One interval's firing count and its sampled firings (ascending key).</summary>
public sealed record CollectedGroup(int Index, double Lower, double Upper, long Count, IReadOnlyList<Candidate> Samples);

/// <summary>Everything collected about one latent, before token strings and weights are attached.</summary>
public sealed record CollectedFeature(int Feature, long Fires, double Sum, float Max, float Min, Histogram Histogram,
    IReadOnlyList<Candidate> Top, IReadOnlyList<CollectedGroup> Groups);

/// <summary>The collection over all batches: per latent, and the positions and sequences counted.</summary>
public sealed record CollectedFeatures(IReadOnlyList<CollectedFeature> Features, long Positions, long Sequences);
