using SaeSharp.Tensors;

namespace SaeSharp.Synthetic;

/// <summary>Changes a batch of feature activations [batch, num_features] in place (hierarchy, scaling, ...).</summary>
public interface IActivationModifier
{
    void Apply(Tensor activations, Rng rng);
}

/// <summary>How correlated firing is drawn: a latent Gaussian z per sample, and a feature fires iff z &gt; Φ⁻¹(1 − p).</summary>
public abstract class CorrelationStructure
{
    public abstract int NumFeatures { get; }
    /// <summary>Writes z [rows, num_features] with unit variances and the structure's correlations.</summary>
    internal abstract void SampleLatent(Tensor z, Rng rng);

    /// <summary>
    /// Decides which features fire in each of <paramref name="scratch"/>'s rows ([rows, num_features], overwritten):
    /// appends row r's firing features, ascending, to <paramref name="firing"/>[r].
    /// </summary>
    internal virtual void SampleFiring(Tensor scratch, float[] thresholds, Rng rng, List<int>[] firing)
    {
        SampleLatent(scratch, rng);
        for (int r = 0; r < scratch.Rows; r++)
        {
            var z = scratch.Row(r);
            for (int j = 0; j < z.Length; j++) if (z[j] > thresholds[j]) firing[r].Add(j);
        }
    }
}

/// <summary>A full correlation matrix C (validated: [n, n], unit diagonal, Cholesky succeeds); z = ε·Lᵀ with C = L·Lᵀ.</summary>
public sealed class FullCorrelation : CorrelationStructure
{
    public Tensor Matrix { get; }
    private readonly Tensor _choleskyT; // Lᵀ [n, n]
    public override int NumFeatures => Matrix.Dim(0);

    public FullCorrelation(Tensor matrix)
    {
        if (matrix.Rank != 2 || matrix.Dim(0) != matrix.Dim(1))
            throw new ArgumentException($"correlation matrix must be square [n, n], got [{matrix.ShapeString}]");
        int n = matrix.Dim(0);
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            if (Math.Abs(matrix[i, i] - 1) > 1e-5) throw new ArgumentException($"correlation matrix diagonal must be all 1s, entry [{i}, {i}] is {matrix[i, i]}");
            for (int j = 0; j < n; j++) a[i * n + j] = 0.5 * (matrix[i, j] + matrix[j, i]);
        }
        var l = LinearAlgebra.Cholesky(a, n) ?? throw new ArgumentException("correlation matrix must be positive definite (Cholesky failed)");
        Matrix = matrix;
        _choleskyT = new Tensor(n, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) _choleskyT[j, i] = (float)l[i * n + j];
    }

    internal override void SampleLatent(Tensor z, Rng rng)
    {
        var eps = Tensor.Uninitialized(z.Dim(0), NumFeatures);
        rng.FillNormal(eps.Span);
        Gemm.MatMul(eps, _choleskyT, z, compute: Compute.Single);
    }
}

/// <summary>
/// Low-rank-plus-diagonal correlation C = F·Fᵀ + diag(d) with unit diagonal: z = ε·Fᵀ + η·√d, ε ~ N(0, I_rank),
/// η ~ N(0, I_n). Costs O(n·rank) per sample, so it scales to 16k features.
/// </summary>
public sealed class LowRankCorrelation : CorrelationStructure
{
    /// <summary>F [n, rank].</summary>
    public Tensor Factor { get; }
    /// <summary>d [n], non-negative.</summary>
    public Tensor Diagonal { get; }
    private readonly float[] _sqrtDiag, _invSqrtDiag;
    public override int NumFeatures => Factor.Dim(0);
    public int Rank => Factor.Dim(1);

    public LowRankCorrelation(Tensor factor, Tensor diagonal)
    {
        if (factor.Rank != 2) throw new ArgumentException($"low-rank correlation factor must be [n, rank], got [{factor.ShapeString}]");
        diagonal.EnsureShape("low-rank correlation diagonal", factor.Dim(0));
        for (int i = 0; i < diagonal.Length; i++)
        {
            if (!(diagonal[i] >= 0)) throw new ArgumentException($"low-rank correlation diagonal[{i}] = {diagonal[i]} must be non-negative");
            double total = diagonal[i] + System.Numerics.Tensors.TensorPrimitives.Dot(factor.Row(i), factor.Row(i));
            if (Math.Abs(total - 1) > 1e-3) throw new ArgumentException($"low-rank correlation: row {i} has variance |F_i|² + d_i = {total}, expected 1");
        }
        Factor = factor;
        Diagonal = diagonal;
        _sqrtDiag = diagonal.ToArray().Select(MathF.Sqrt).ToArray();
        _invSqrtDiag = _sqrtDiag.Select(sd => sd > 0 ? 1 / sd : float.PositiveInfinity).ToArray();
    }

    internal override void SampleLatent(Tensor z, Rng rng)
    {
        int rows = z.Dim(0), n = NumFeatures;
        var eps = Tensor.Uninitialized(rows, Rank);
        rng.FillNormal(eps.Span);
        Gemm.MatMul(eps, Factor, z, Compute.Single, Trans.No, Trans.Yes);
        for (int r = 0; r < rows; r++)
        {
            var zr = z.Row(r);
            for (int j = 0; j < n; j++) zr[j] += (float)rng.Normal() * _sqrtDiag[j];
        }
    }

    // Features are thinned in blocks of this many: one bound per block, then only candidates get a uniform each.
    private const int ThinBlock = 64;

    /// <summary>
    /// Fires feature j iff η_j > (t_j − s_j)/√d_j, i.e. with probability Q(a_j) given s = ε·Fᵀ. Instead of one
    /// uniform per feature, each block of <see cref="ThinBlock"/> features takes the bound Qb = Q(min a) ≥ Q(a_j),
    /// draws candidates as Bernoulli(Qb) by geometric skips, and keeps a candidate with probability Q(a_j)/Qb
    /// (thinning, exact). Firing probabilities are small for most features, so this draws a few uniforms per block.
    /// </summary>
    internal override void SampleFiring(Tensor scratch, float[] thresholds, Rng rng, List<int>[] firing)
    {
        int rows = scratch.Dim(0), n = NumFeatures;
        var eps = Tensor.Uninitialized(rows, Rank);
        rng.FillNormal(eps.Span);
        Gemm.MatMul(eps, Factor, scratch, Compute.Single, Trans.No, Trans.Yes); // s = ε·Fᵀ
        // Features without noise or with an infinite threshold fire iff s > t, with no randomness.
        var exact = Enumerable.Range(0, n).Where(j => float.IsInfinity(thresholds[j]) || _sqrtDiag[j] == 0).ToArray();
        var exactFires = new bool[exact.Length];
        var a = new float[n];
        for (int r = 0; r < rows; r++)
        {
            var row = scratch.Row(r);
            var fires = firing[r];
            System.Numerics.Tensors.TensorPrimitives.Subtract(thresholds, row, a);
            System.Numerics.Tensors.TensorPrimitives.Multiply(a, _invSqrtDiag, a); // a_j = (t_j − s_j) / √d_j
            for (int e = 0; e < exact.Length; e++)
            {
                exactFires[e] = row[exact[e]] > thresholds[exact[e]];
                a[exact[e]] = float.PositiveInfinity;
            }
            for (int j0 = 0; j0 < n; j0 += ThinBlock)
            {
                int len = Math.Min(ThinBlock, n - j0);
                double amin = System.Numerics.Tensors.TensorPrimitives.Min(a.AsSpan(j0, len));
                if (double.IsPositiveInfinity(amin)) continue;
                var (bound, logMiss, noneInBlock) = BlockBound(amin);
                if (bound >= 1)
                {
                    for (int j = j0; j < j0 + len; j++)
                        if (!float.IsPositiveInfinity(a[j]) && Fires(rng.NextDouble(), a[j])) fires.Add(j);
                    continue;
                }
                if (!(bound > 0)) continue;
                // Failures before the next Bernoulli(bound) success: ⌊ln U / ln(1 − bound)⌋ with U in (0, 1]. The first
                // skip reaches past a full block iff U ≤ (1 − bound)^len, which the table answers without a logarithm.
                double u = 1 - rng.NextDouble();
                if (len == ThinBlock && u <= noneInBlock) continue;
                for (int pos = -1; ;)
                {
                    double skip = Math.Floor(Math.Log(u) / logMiss);
                    if (skip >= len - pos - 1) break;
                    pos += (int)skip + 1;
                    int j = j0 + pos;
                    double v = rng.NextDouble() * bound;
                    if (!float.IsPositiveInfinity(a[j]) && Fires(v, a[j])) fires.Add(j);
                    u = 1 - rng.NextDouble();
                }
            }
            if (exact.Length == 0) continue;
            for (int e = 0; e < exact.Length; e++) if (exactFires[e]) fires.Add(exact[e]);
            fires.Sort();
        }
    }

    // Q(a) = P(N(0,1) > a) on a grid over [-GridMax, GridMax]; used to decide most draws without evaluating Q.
    private const double GridMax = 8, GridStep = 1.0 / 64;
    private static readonly double[] UpperTail = BuildUpperTail();

    private static double[] BuildUpperTail()
    {
        int points = (int)(2 * GridMax / GridStep) + 1;
        var q = new double[points];
        for (int k = 0; k < points; k++) q[k] = NormalQuantile.Cdf(-(-GridMax + k * GridStep));
        return q;
    }

    /// <summary>u &lt; Q(a), deciding on the grid's bracketing values first and evaluating Q only in between.</summary>
    private static bool Fires(double u, double a)
    {
        var q = UpperTail;
        double pos = (a + GridMax) / GridStep;
        if (pos >= 0 && pos < q.Length - 1)
        {
            int k = (int)pos;
            // Q decreases: Q(grid[k]) ≥ Q(a) ≥ Q(grid[k+1]).
            return u < q[k + 1] || (u < q[k] && u < NormalQuantile.Cdf(-a));
        }
        return u < NormalQuantile.Cdf(-a);
    }

    // On the grid: ln(1 − Q) and (1 − Q)^ThinBlock, the per-block constants of the geometric skips.
    private static readonly double[] LogMissTable = UpperTail.Select(q => Math.Log(1 - q)).ToArray();
    private static readonly double[] NoneInBlockTable = LogMissTable.Select(l => Math.Exp(ThinBlock * l)).ToArray();

    /// <summary>
    /// A bound ≥ Q(a) (the grid point at or below a, or Q itself off the grid), with ln(1 − bound) and
    /// (1 − bound)^<see cref="ThinBlock"/>, the chance a full block draws no candidate.
    /// </summary>
    private static (double Bound, double LogMiss, double NoneInBlock) BlockBound(double a)
    {
        double pos = (a + GridMax) / GridStep;
        if (pos < 0) return (1, double.NegativeInfinity, 0);
        if (pos < UpperTail.Length - 1)
        {
            int k = (int)pos;
            return (UpperTail[k], LogMissTable[k], NoneInBlockTable[k]);
        }
        double q = NormalQuantile.Cdf(-a), logMiss = Math.Log(1 - q);
        return (q, logMiss, Math.Exp(ThinBlock * logMiss));
    }
}

/// <summary>
/// Synthetic feature activations (SAELens's <c>ActivationGenerator</c>): feature j fires with probability p_j
/// (independently, or through a Gaussian copula), a firing feature takes ReLU(mean_j + std_j·N(0, 1)), then the
/// modifiers run in order and a final ReLU clamps negatives.
/// </summary>
public sealed class ActivationGenerator
{
    /// <summary>Rows per block: each block draws from its own generator forked in order, so results do not depend on threads.</summary>
    public const int BlockRows = 64;

    public int NumFeatures { get; }
    public float[] FiringProbabilities { get; }
    public float[] MeanMagnitudes { get; }
    public float[] StdMagnitudes { get; }
    public IReadOnlyList<IActivationModifier> Modifiers { get; }
    public CorrelationStructure? Correlation { get; }
    private readonly float[]? _thresholds;

    public ActivationGenerator(float[] firingProbabilities, float[]? meanMagnitudes = null, float[]? stdMagnitudes = null,
        IEnumerable<IActivationModifier>? modifiers = null, CorrelationStructure? correlation = null)
    {
        NumFeatures = firingProbabilities.Length;
        if (NumFeatures == 0) throw new ArgumentException("firing probabilities must not be empty");
        for (int i = 0; i < NumFeatures; i++)
            if (!(firingProbabilities[i] >= 0 && firingProbabilities[i] <= 1))
                throw new ArgumentException($"firing_probabilities[{i}] = {firingProbabilities[i]} is outside [0, 1]");
        FiringProbabilities = (float[])firingProbabilities.Clone();
        MeanMagnitudes = Check(meanMagnitudes, 1f, "mean_firing_magnitudes", allowNegative: true);
        StdMagnitudes = Check(stdMagnitudes, 0f, "std_firing_magnitudes", allowNegative: false);
        Modifiers = (modifiers ?? []).ToList();
        if (correlation is not null)
        {
            if (correlation.NumFeatures != NumFeatures)
                throw new ArgumentException($"correlation has {correlation.NumFeatures} features, firing probabilities have {NumFeatures}");
            Correlation = correlation;
            _thresholds = FiringProbabilities.Select(p => (float)NormalQuantile.Inverse(1 - (double)p)).ToArray();
        }
    }

    private float[] Check(float[]? values, float fill, string name, bool allowNegative)
    {
        if (values is null) return Enumerable.Repeat(fill, NumFeatures).ToArray();
        if (values.Length != NumFeatures) throw new ArgumentException($"{name} has {values.Length} entries, expected {NumFeatures}");
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]) || (!allowNegative && values[i] < 0))
                throw new ArgumentException($"{name}[{i}] = {values[i]} must be finite{(allowNegative ? "" : " and non-negative")}");
        return (float[])values.Clone();
    }

    /// <summary>A batch of feature activations [batch, num_features] (non-negative, dense).</summary>
    public Tensor Sample(int batch, Rng rng, Compute compute)
    {
        var codes = SampleCodes(batch, rng, compute);
        var acts = new Tensor(batch, NumFeatures);
        compute.ForRange(batch, 64, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var row = acts.Row(r);
                for (int e = codes.RowStart[r]; e < codes.RowStart[r + 1]; e++) row[codes.Index[e]] = codes.Value[e];
            }
        });
        return acts;
    }

    /// <summary>
    /// A batch of feature activations as sparse codes (the non-zero features of each row, ascending): what
    /// <see cref="Sample"/> returns densely, from the same draws. A row holds a few dozen of thousands of features, so
    /// the generator never builds dense rows except for modifiers other than the hierarchy.
    /// </summary>
    public SparseCodes SampleCodes(int batch, Rng rng, Compute compute)
    {
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), $"batch size must be non-negative, got {batch}");
        int blocks = (batch + BlockRows - 1) / BlockRows;
        var rngs = new Rng[blocks];
        for (int b = 0; b < blocks; b++) rngs[b] = rng.Fork();
        var blockEntries = new (int[] Counts, int[] Index, float[] Value)[blocks];
        // Each part reuses its scratch across its blocks (a fresh 4 MB buffer per block costs page faults).
        compute.ForRange(blocks, 1, (b0, b1) =>
        {
            var scratch = new BlockScratch(this);
            for (int b = b0; b < b1; b++)
                blockEntries[b] = SampleBlock(Math.Min(BlockRows, batch - b * BlockRows), rngs[b], scratch);
        });
        var rowCounts = new int[batch];
        for (int b = 0; b < blocks; b++) blockEntries[b].Counts.CopyTo(rowCounts, b * BlockRows);
        var codes = SparseCodes.FromRowCounts(NumFeatures, rowCounts);
        var blockStart = new int[blocks + 1];
        for (int b = 0; b < blocks; b++) blockStart[b + 1] = blockStart[b] + blockEntries[b].Index.Length;
        compute.For(blocks, b =>
        {
            blockEntries[b].Index.CopyTo(codes.Index, blockStart[b]);
            blockEntries[b].Value.CopyTo(codes.Value, blockStart[b]);
        });
        return codes;
    }

    // Per-thread buffers: the correlation's [BlockRows, n] latent scratch, the firing lists, and a dense block for
    // modifiers other than the hierarchy.
    private sealed class BlockScratch(ActivationGenerator g)
    {
        public readonly Tensor? Latent = g.Correlation is null ? null : Tensor.Uninitialized(BlockRows, g.NumFeatures);
        public readonly List<int>[] Firing = Enumerable.Range(0, BlockRows).Select(_ => new List<int>()).ToArray();
        public readonly List<float>[] Values = Enumerable.Range(0, BlockRows).Select(_ => new List<float>()).ToArray();
        public Tensor? Dense;
        public float[]? HierarchyRow;
    }

    /// <summary>One block's rows: firing, magnitudes (ascending features), modifiers in order, the final ReLU; returns each row's count and the non-zero entries.</summary>
    private (int[] Counts, int[] Index, float[] Value) SampleBlock(int rows, Rng rng, BlockScratch sc)
    {
        int n = NumFeatures;
        var firing = sc.Firing; var values = sc.Values;
        for (int r = 0; r < rows; r++) { firing[r].Clear(); values[r].Clear(); }
        if (Correlation is not null) Correlation.SampleFiring(sc.Latent!.RowSlice(0, rows), _thresholds!, rng, firing);
        for (int r = 0; r < rows; r++)
        {
            if (Correlation is null)
            {
                for (int j = 0; j < n; j++)
                    if (rng.NextDouble() < FiringProbabilities[j]) { firing[r].Add(j); values[r].Add(Magnitude(j, rng)); }
                continue;
            }
            foreach (int j in firing[r]) values[r].Add(Magnitude(j, rng));
        }
        foreach (var m in Modifiers)
        {
            if (m is HierarchyModifier h)
            {
                h.ApplySparse(firing.AsSpan(0, rows), values.AsSpan(0, rows), rng, sc.HierarchyRow ??= new float[n]);
                continue;
            }
            // Any other modifier sees the block densely, as its interface promises.
            var dense = (sc.Dense ??= new Tensor(BlockRows, n)).RowSlice(0, rows);
            for (int r = 0; r < rows; r++)
            {
                var row = dense.Row(r);
                row.Clear();
                for (int t = 0; t < firing[r].Count; t++) row[firing[r][t]] = values[r][t];
            }
            m.Apply(dense, rng);
            for (int r = 0; r < rows; r++)
            {
                firing[r].Clear(); values[r].Clear();
                var row = dense.Row(r);
                for (int j = 0; j < n; j++) if (row[j] != 0) { firing[r].Add(j); values[r].Add(row[j]); }
            }
        }
        // The final ReLU (after modifiers) and dropping zeros: codes hold the non-zero activations only.
        var counts = new int[rows];
        int total = 0;
        for (int r = 0; r < rows; r++)
            foreach (float v in values[r]) if (!(v <= 0)) counts[r]++;
        foreach (int c in counts) total += c;
        var index = new int[total]; var value = new float[total];
        for (int r = 0, w = 0; r < rows; r++)
            for (int t = 0; t < values[r].Count; t++)
            {
                float v = values[r][t];
                if (!(v <= 0)) { index[w] = firing[r][t]; value[w++] = v; }
            }
        return (counts, index, value);
    }

    /// <summary>ReLU(mean + std·N(0, 1)) of a firing feature.</summary>
    private float Magnitude(int j, Rng rng)
    {
        float v = MeanMagnitudes[j];
        if (StdMagnitudes[j] > 0) v += StdMagnitudes[j] * (float)rng.Normal();
        return v > 0 ? v : 0;
    }

    /// <summary>Feature activations and the hidden activations they produce through <paramref name="dictionary"/>.</summary>
    public (Tensor Features, Tensor Hidden) SampleHidden(FeatureDictionary dictionary, int batch, Rng rng, Compute compute)
    {
        var (codes, hidden) = SampleHiddenCodes(dictionary, batch, rng, compute);
        return (codes.ToDense(), hidden);
    }

    /// <summary><see cref="SampleHidden"/> with the feature activations as sparse codes (no dense [batch, num_features] rows).</summary>
    public (SparseCodes Features, Tensor Hidden) SampleHiddenCodes(FeatureDictionary dictionary, int batch, Rng rng, Compute compute)
    {
        if (dictionary.NumFeatures != NumFeatures)
            throw new ArgumentException($"dictionary has {dictionary.NumFeatures} features, generator has {NumFeatures}");
        var codes = SampleCodes(batch, rng, compute);
        return (codes, dictionary.Forward(codes, compute));
    }
}
