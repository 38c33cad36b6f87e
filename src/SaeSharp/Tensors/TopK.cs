using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SaeSharp.Tensors;

/// <summary>Top-k selection per row and over a whole batch. Ties go to the lower index.</summary>
public static class TopK
{
    /// <summary>
    /// For each row of x [rows, cols], the k largest values (descending; ties by lower index) and their
    /// indices, written as <see cref="SparseCodes"/> with k entries per row. With <paramref name="relu"/>, the
    /// selected values are clamped at zero afterwards (SAELens TopK: topk, then ReLU on the values).
    /// A <paramref name="bias"/> is first added to every row of x in place, in the same pass (an encoder bias).
    /// </summary>
    public static SparseCodes Rows(Tensor x, int k, bool relu, Compute compute, float[]? bias = null)
    {
        var codes = SparseCodes.Fixed(x.Rows, x.Cols, k);
        Rows(x, k, relu, codes, compute, bias);
        return codes;
    }

    public static void Rows(Tensor x, int k, bool relu, SparseCodes output, Compute compute, float[]? bias = null)
    {
        if (bias is not null && bias.Length != x.Cols) throw new ArgumentException($"bias has {bias.Length} elements, rows have {x.Cols}");
        int rows = x.Rows, cols = x.Cols;
        if (k < 1 || k > cols) throw new ArgumentOutOfRangeException(nameof(k), $"k = {k} must be in [1, {cols}]");
        if (output.Rows != rows || output.Cols != cols || output.Index.Length < rows * k)
            throw new ArgumentException("output codes do not match x");
        for (int r = 0; r <= rows; r++) output.RowStart[r] = r * k;
        var data = x.Data;
        int offset = x.Offset;
        compute.ForRange(rows, 8, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var row = new Span<float>(data, offset + r * cols, cols);
                if (bias is not null) TensorPrimitives.Add(row, bias, row);
                SelectRow(row, k, output.Value.AsSpan(r * k, k), output.Index.AsSpan(r * k, k));
                if (relu)
                {
                    var v = output.Value.AsSpan(r * k, k);
                    for (int j = 0; j < k; j++) if (v[j] < 0) v[j] = 0;
                }
            }
        });
    }

    /// <summary>
    /// The same k entries as <see cref="SelectRow(ReadOnlySpan{float}, int, Span{float}, Span{int})"/> (the largest, ties to the lower index), in increasing index
    /// order, for large k (AuxK's k_aux of the dead latents): a radix select finds the k-th largest value's bits in
    /// three histogram passes (11, 11 and 10 bits; after the first only that bin's candidates are visited), then one
    /// pass in index order takes every larger entry and the ties at that value from the lowest index, so the output
    /// needs no sort. <paramref name="scratch"/> needs row.Length slots.
    /// </summary>
    public static void SelectRowByIndex(ReadOnlySpan<float> row, int k, Span<float> values, Span<int> indices, Span<ulong> scratch)
    {
        int n = row.Length;
        if (k < 1 || k > n) throw new ArgumentOutOfRangeException(nameof(k), $"k = {k} must be in [1, {n}]");
        if (k == n)
        {
            // Everything is selected (AuxK with at most k_aux dead latents).
            for (int t = 0; t < n; t++) indices[t] = t;
            row.CopyTo(values);
            return;
        }
        // The first half of scratch holds every key, the second half the candidates of the later passes.
        var both = System.Runtime.InteropServices.MemoryMarshal.Cast<ulong, uint>(scratch[..n]);
        var keys = both[..n];
        var candidates = both[n..];
        SortableKeys(row, keys);
        Span<int> hist = stackalloc int[1 << 11];
        // Pass 1 over all keys (top 11 bits), then passes over the candidates that share the chosen bins so far.
        int need = k; // entries still to take at or below the prefix found so far
        uint prefix = 0;
        ReadOnlySpan<uint> pool = keys;
        for (int pass = 0; pass < RadixPasses.Length; pass++)
        {
            var (shift, bits) = RadixPasses[pass];
            hist.Clear();
            uint binMask = (1u << bits) - 1;
            foreach (uint u in pool) hist[(int)((u >> shift) & binMask)]++;
            int bin = (int)binMask, above = 0;
            while (above + hist[bin] < need) above += hist[bin--];
            need -= above;
            prefix |= (uint)bin << shift;
            if (pass == RadixPasses.Length - 1) break;
            // Keep only the chosen bin's keys for the next pass (in place from the second pass on: writes trail reads).
            uint highMask = ~0u << shift;
            int kept = 0;
            foreach (uint u in pool) if ((u & highMask) == prefix) candidates[kept++] = u;
            pool = candidates[..kept];
        }
        // prefix is now the k-th largest key: take every larger key and the first `need` equal to it, in index order.
        int t2 = 0, ties = need, at = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            // Eight keys at a time: a mask of those at or above the cut, then its set bits in order.
            var cut = Vector256.Create(prefix);
            for (; at + 8 <= n && t2 < k; at += 8)
            {
                var v = Vector256.Create(keys.Slice(at, 8));
                for (uint bits = Vector256.GreaterThanOrEqual(v, cut).ExtractMostSignificantBits(); bits != 0; bits &= bits - 1)
                {
                    int i = at + System.Numerics.BitOperations.TrailingZeroCount(bits);
                    if (Taken(keys[i], prefix, ref ties)) { indices[t2] = i; values[t2++] = row[i]; }
                }
            }
        }
        for (int i = at; i < n && t2 < k; i++)
            if (Taken(keys[i], prefix, ref ties)) { indices[t2] = i; values[t2++] = row[i]; }
    }

    // Whether the entry of this key is among the top k whose k-th largest key is `cut`: larger ones all are, equal
    // ones while ties are left (lowest index first, as the caller walks in index order).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Taken(uint key, uint cut, ref int ties) => key > cut || (key == cut && ties-- > 0);

    // keys[i] = SortableBits(row[i]), eight at a time where the machine has 256-bit vectors.
    private static void SortableKeys(ReadOnlySpan<float> row, Span<uint> keys)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var high = Vector256.Create(0x80000000u);
            for (; i + 8 <= row.Length; i += 8)
            {
                var u = Vector256.Create(row.Slice(i, 8)).AsUInt32();
                // Negative: all bits flipped; otherwise the sign bit set (SortableBits without a branch).
                var negative = Vector256.ShiftRightArithmetic(u.AsInt32(), 31).AsUInt32();
                (u ^ (negative | high)).CopyTo(keys.Slice(i, 8));
            }
        }
        for (; i < row.Length; i++) keys[i] = SortableBits(row[i]);
    }

    private static readonly (int Shift, int Bits)[] RadixPasses = [(21, 11), (10, 11), (0, 10)];

    // Float bits mapped so that unsigned order is float order.
    private static uint SortableBits(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        return (u & 0x80000000u) != 0 ? ~u : u | 0x80000000u;
    }

    /// <summary>Top-k of one row into values/indices sorted descending (ties by lower index).</summary>
    public static void SelectRow(ReadOnlySpan<float> row, int k, Span<float> values, Span<int> indices) =>
        SelectRow(row, k, values, indices, Simd.Best);

    /// <summary><see cref="SelectRow(ReadOnlySpan{float}, int, Span{float}, Span{int})"/>, scanning at a given vector width (same result at every width).</summary>
    internal static void SelectRow(ReadOnlySpan<float> row, int k, Span<float> values, Span<int> indices, SimdWidth width)
    {
        int n = row.Length;
        if (k < 1 || k > n) throw new ArgumentOutOfRangeException(nameof(k));
        if (n >= CandidateGroup * k && SelectAmongCandidates(row, k, values, indices, width)) return;
        // Min-heap of the best k seen so far, ordered so the root is the worst: (smallest value, largest index).
        for (int i = 0; i < k; i++)
        {
            values[i] = row[i];
            indices[i] = i;
            SiftUp(values, indices, i);
        }
        var scan = new HeapScan(row, k, values, indices);
        Simd.Run(ref scan, width);
        SortDescending(values, indices, k);
    }

    /// <summary>Rows at least this many times k long take the candidate path (each of the k groups that many entries or more).</summary>
    private const int CandidateGroup = 16;

    /// <summary>
    /// Top-k through a cut known to be at or below the k-th largest value: the row is split into k groups and the
    /// smallest group maximum is that cut (the k maxima are k entries at or above it). Only the entries at or above
    /// it (about 230 of 16,384 on a normal row with k 32) go through the heap, in index order, so the result is the
    /// heap's over the whole row; finding them is two vector passes, the second over a row already in cache.
    /// Without this the heap's threshold starts at the first k entries and climbs slowly, so early vectors mostly
    /// enter it: TopK.Rows over 4096 × 16,384 with k 32 took 62 ms on two Zen 3 threads, 50 ms this way. False when
    /// NaNs (which no comparison takes) leave fewer than k entries at or above the cut: the plain heap decides then.
    /// </summary>
    private static bool SelectAmongCandidates(ReadOnlySpan<float> row, int k, Span<float> values, Span<int> indices, SimdWidth width)
    {
        int n = row.Length, group = n / k;
        float cut = float.PositiveInfinity;
        for (int g = 0; g < k; g++)
        {
            int start = g * group;
            var max = new MaxScan(row.Slice(start, g == k - 1 ? n - start : group));
            Simd.Run(ref max, width);
            cut = Math.Min(cut, max.Max);
        }
        var candidates = System.Buffers.ArrayPool<int>.Shared.Rent(n);
        try
        {
            var scan = new AtOrAboveScan(row, cut, candidates);
            Simd.Run(ref scan, width);
            int count = scan.Count;
            if (count < k) return false;
            for (int i = 0; i < k; i++)
            {
                values[i] = row[candidates[i]];
                indices[i] = candidates[i];
                SiftUp(values, indices, i);
            }
            for (int c = k; c < count; c++) Offer(values, indices, k, row[candidates[c]], candidates[c]);
            SortDescending(values, indices, k);
            return true;
        }
        finally { System.Buffers.ArrayPool<int>.Shared.Return(candidates); }
    }

    // An entry of a part of a row at or below its maximum, never NaN: the maximum, except that a lane whose first
    // value is NaN keeps it and is left out (−∞ when every lane is). Either way an entry of the part, all the cut needs.
    private ref struct MaxScan(ReadOnlySpan<float> part) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _part = part;
        public float Max { get; private set; } = float.NegativeInfinity;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var part = _part;
            if (j + T.Count > part.Length) return j;
            var m = T.Load(part, j);
            for (j += T.Count; j + T.Count <= part.Length; j += T.Count)
            {
                var v = T.Load(part, j);
                m = T.Select(T.GreaterThan(v, m), v, m);
            }
            Span<float> lanes = stackalloc float[T.Count];
            m.Store(lanes, 0);
            float max = Max;
            foreach (float v in lanes) if (v > max) max = v;
            Max = max;
            return j;
        }
    }

    // The indices of the entries at or above a cut, in order, into a buffer as long as the row.
    private ref struct AtOrAboveScan(ReadOnlySpan<float> row, float cut, int[] found) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _row = row;
        private readonly float _cut = cut;
        private readonly int[] _found = found;
        public int Count { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var row = _row; var found = _found; int count = Count;
            var cut = T.Create(_cut);
            for (; j + T.Count <= row.Length; j += T.Count)
            {
                var v = T.Load(row, j);
                for (uint mask = T.Bits(T.GreaterThan(v, cut) | T.EqualTo(v, cut)); mask != 0; mask &= mask - 1)
                    found[count++] = j + System.Numerics.BitOperations.TrailingZeroCount(mask);
            }
            Count = count;
            return j;
        }
    }

    // Offers row[k..] to the heap, skipping whole vectors that cannot enter it: the scan is the hot loop when k << n.
    private readonly ref struct HeapScan(ReadOnlySpan<float> row, int k, Span<float> values, Span<int> indices) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _rest = row[k..];
        private readonly int _k = k;
        private readonly Span<float> _values = values;
        private readonly Span<int> _indices = indices;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var rest = _rest; var values = _values; var indices = _indices; int k = _k;
            for (; j + T.Count <= rest.Length; j += T.Count)
                if (T.Bits(T.GreaterThan(T.Load(rest, j), T.Create(values[0]))) != 0)
                    for (int t = j; t < j + T.Count; t++) Offer(values, indices, k, rest[t], k + t);
            return j;
        }
    }

    private static void Offer(Span<float> values, Span<int> indices, int k, float v, int idx)
    {
        // Later indices lose ties, so only a strictly larger value replaces the root.
        if (!(v > values[0])) return;
        values[0] = v;
        indices[0] = idx;
        SiftDown(values, indices, 0, k);
    }

    // "a worse than b" for the heap: smaller value, or equal value and larger index.
    private static bool Worse(float va, int ia, float vb, int ib) => va < vb || (va == vb && ia > ib);

    private static void SiftUp(Span<float> v, Span<int> ix, int i)
    {
        while (i > 0)
        {
            int p = (i - 1) >> 1;
            if (!Worse(v[i], ix[i], v[p], ix[p])) break;
            (v[i], v[p]) = (v[p], v[i]);
            (ix[i], ix[p]) = (ix[p], ix[i]);
            i = p;
        }
    }

    private static void SiftDown(Span<float> v, Span<int> ix, int i, int n)
    {
        while (true)
        {
            int l = 2 * i + 1, r = l + 1, w = i;
            if (l < n && Worse(v[l], ix[l], v[w], ix[w])) w = l;
            if (r < n && Worse(v[r], ix[r], v[w], ix[w])) w = r;
            if (w == i) return;
            (v[i], v[w]) = (v[w], v[i]);
            (ix[i], ix[w]) = (ix[w], ix[i]);
            i = w;
        }
    }

    private static void SortDescending(Span<float> v, Span<int> ix, int k)
    {
        // Heap-sort: repeatedly move the worst to the end.
        for (int end = k - 1; end > 0; end--)
        {
            (v[0], v[end]) = (v[end], v[0]);
            (ix[0], ix[end]) = (ix[end], ix[0]);
            SiftDown(v, ix, 0, end);
        }
    }

    /// <summary>
    /// Batch top-k (SAELens BatchTopK): ReLU, then keep the <paramref name="total"/> largest positive values
    /// of the whole [rows, cols] matrix (ties by lower flat index). Returns codes with indices ascending
    /// within each row, and the smallest kept value (0 when nothing is kept).
    /// </summary>
    public static (SparseCodes Codes, float MinKept) Batch(Tensor x, int total, Compute compute)
    {
        if (total < 1) throw new ArgumentOutOfRangeException(nameof(total), "total must be at least 1");
        var c = compute;
        int rows = x.Rows, cols = x.Cols;
        var data = x.Data;
        int offset = x.Offset;

        var fast = BatchFromSample(x, total, c);
        if (fast is not null) return fast.Value;

        // Positive floats order like their bit patterns: select the threshold by a two-level radix histogram.
        var hi = Histogram(c, data, offset, rows, cols, hiBin: -1);
        long positives = 0;
        foreach (long h in hi) positives += h;
        long keep = Math.Min(total, positives);
        var codes = new SparseCodes(rows, cols, (int)keep);
        if (keep == 0) return (codes, 0f);

        int hiBin = FindBin(hi, keep, out long aboveHi);
        var lo = Histogram(c, data, offset, rows, cols, hiBin);
        int loBin = FindBin(lo, keep - aboveHi, out long aboveLo);
        uint threshold = ((uint)hiBin << 16) | (uint)loBin;
        long ties = keep - aboveHi - aboveLo; // how many values equal to the threshold to keep, lowest index first

        int write = 0;
        for (int r = 0; r < rows; r++)
        {
            codes.RowStart[r] = write;
            var row = new ReadOnlySpan<float>(data, offset + r * cols, cols);
            for (int j = 0; j < cols; j++)
            {
                uint bits = BitConverter.SingleToUInt32Bits(row[j]);
                if ((int)bits <= 0 || bits < threshold || bits > 0x7F800000) continue;
                if (bits == threshold)
                {
                    if (ties == 0) continue;
                    ties--;
                }
                codes.Index[write] = j;
                codes.Value[write] = row[j];
                write++;
            }
        }
        codes.RowStart[rows] = write;
        return (codes, BitConverter.UInt32BitsToSingle(threshold));
    }

    // The fast path: estimate a threshold a little below the answer from a strided sample, gather every value
    // above it in one vectorised pass, then select exactly among those candidates. Returns null when the estimate
    // was too high (fewer candidates than needed, or too few positives), and the caller falls back to the exact
    // radix selection; either way the result is the same.
    private static (SparseCodes, float)? BatchFromSample(Tensor x, int total, Compute c)
    {
        int rows = x.Rows, cols = x.Cols;
        long n = (long)rows * cols;
        const int SampleTarget = 1 << 16;
        if (n < 4L * SampleTarget || (long)total * 4 > n) return null;
        long stride = n / SampleTarget;
        var sample = new List<float>(SampleTarget + 1);
        var data = x.Data;
        int offset = x.Offset;
        for (long i = stride / 2; i < n; i += stride)
        {
            float v = data[offset + i];
            if (v > 0 && !float.IsNaN(v)) sample.Add(v);
        }
        double expected = (double)total / n * sample.Count;   // sample rank of the true threshold
        int rank = (int)Math.Ceiling(expected * 1.5 + 4 * Math.Sqrt(expected + 1) + 16);
        if (rank >= sample.Count) return null;
        sample.Sort();
        float estimate = sample[sample.Count - 1 - rank];

        // Candidates per part, in flat-index order.
        int parts = Math.Max(1, Math.Min(c.Threads, rows));
        var found = new List<long>[parts];
        c.For(parts, p =>
        {
            var list = new List<long>();
            int r0 = (int)((long)rows * p / parts), r1 = (int)((long)rows * (p + 1) / parts);
            for (int r = r0; r < r1; r++) CollectAbove(new ReadOnlySpan<float>(data, offset + r * cols, cols), estimate, (long)r * cols, list, Simd.Best);
            found[p] = list;
        });
        int count = 0;
        foreach (var l in found) count += l.Count;
        if (count < total) return null;

        // Order key: larger value first, then lower flat index. Positive float bits order like the values.
        var keys = new ulong[count];
        int w = 0;
        foreach (var l in found)
            foreach (long f in l)
                keys[w++] = ((ulong)BitConverter.SingleToUInt32Bits(data[offset + f]) << 32) | (uint)~(uint)f;
        var sorted = (ulong[])keys.Clone();
        Array.Sort(sorted);
        ulong cut = sorted[count - total]; // the total-th largest key

        var codes = new SparseCodes(rows, cols, total);
        int write = 0, row0 = 0;
        foreach (ulong key in keys) // keys are in flat-index order
        {
            if (key < cut) continue;
            long f = ~(uint)key & 0xFFFFFFFFL;
            int r = (int)(f / cols);
            while (row0 <= r) codes.RowStart[row0++] = write;
            codes.Index[write] = (int)(f - (long)r * cols);
            codes.Value[write] = data[offset + f];
            write++;
        }
        while (row0 <= rows) codes.RowStart[row0++] = write;
        return (codes, BitConverter.UInt32BitsToSingle((uint)(cut >> 32)));
    }

    /// <summary>Appends rowStart + j for every row[j] &gt; <paramref name="threshold"/>, in order, scanning at a given vector width.</summary>
    internal static void CollectAbove(ReadOnlySpan<float> row, float threshold, long rowStart, List<long> found, SimdWidth width)
    {
        var loop = new AboveLoop(row, threshold, rowStart, found);
        Simd.Run(ref loop, width);
    }

    private readonly ref struct AboveLoop(ReadOnlySpan<float> row, float threshold, long rowStart, List<long> found) : ISimdLoop
    {
        private readonly ReadOnlySpan<float> _row = row;
        private readonly float _threshold = threshold;
        private readonly long _rowStart = rowStart;
        private readonly List<long> _found = found;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<T>(int j) where T : struct, IFloatLanes<T>
        {
            var row = _row; var found = _found;
            var threshold = T.Create(_threshold);
            for (; j + T.Count <= row.Length; j += T.Count)
                for (uint mask = T.Bits(T.GreaterThan(T.Load(row, j), threshold)); mask != 0; mask &= mask - 1)
                    found.Add(_rowStart + j + System.Numerics.BitOperations.TrailingZeroCount(mask));
            return j;
        }
    }

    // Histogram of positive, non-NaN values: by the high 16 bits (hiBin < 0), or by the low 16 bits of the
    // values whose high bits equal hiBin. Per-part histograms are summed in part order.
    private static long[] Histogram(Compute c, float[] data, int offset, int rows, int cols, int hiBin)
    {
        const uint PositiveInfinityBits = 0x7F800000;
        int parts = Math.Max(1, Math.Min(c.Threads, rows));
        var partial = new long[parts][];
        c.For(parts, p =>
        {
            var h = new long[1 << 16];
            int r0 = (int)((long)rows * p / parts), r1 = (int)((long)rows * (p + 1) / parts);
            var span = new ReadOnlySpan<float>(data, offset + r0 * cols, (r1 - r0) * cols);
            foreach (float v in span)
            {
                uint bits = BitConverter.SingleToUInt32Bits(v);
                if ((int)bits <= 0 || bits > PositiveInfinityBits) continue; // not positive, or NaN
                if (hiBin < 0) h[bits >> 16]++;
                else if ((bits >> 16) == (uint)hiBin) h[bits & 0xFFFF]++;
            }
            partial[p] = h;
        });
        var sum = new long[1 << 16];
        foreach (var h in partial) TensorPrimitives.Add(sum, h, sum);
        return sum;
    }

    // Highest bin such that the counts at and above it reach `need`; `above` receives the count strictly above it.
    private static int FindBin(long[] hist, long need, out long above)
    {
        long acc = 0;
        for (int b = hist.Length - 1; b >= 0; b--)
        {
            if (acc + hist[b] >= need) { above = acc; return b; }
            acc += hist[b];
        }
        throw new InvalidOperationException("histogram holds fewer values than requested");
    }
}
