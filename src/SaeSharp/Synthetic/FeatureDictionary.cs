using System.Numerics.Tensors;
using SaeSharp.Tensors;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Synthetic;

/// <summary>How a <see cref="FeatureDictionary"/> gets its bias.</summary>
public enum DictionaryBias { None, RandomUnit, GivenNorm }

/// <summary>
/// Maps feature activations f [batch, num_features] to hidden activations h = f·V + bias, where the rows of
/// V [num_features, hidden_dim] are unit feature vectors (SAELens's <c>FeatureDictionary</c>).
/// </summary>
public sealed class FeatureDictionary
{
    /// <summary>V [num_features, hidden_dim], unit rows.</summary>
    public Tensor FeatureVectors { get; }
    /// <summary>[hidden_dim]; all zeros when there is no bias.</summary>
    public Tensor Bias { get; }
    public int NumFeatures => FeatureVectors.Dim(0);
    public int HiddenDim => FeatureVectors.Dim(1);

    public FeatureDictionary(Tensor featureVectors, Tensor? bias = null)
    {
        if (featureVectors.Rank != 2) throw new ArgumentException($"feature vectors must be [num_features, hidden_dim], got [{featureVectors.ShapeString}]");
        FeatureVectors = featureVectors;
        Bias = bias ?? new Tensor(featureVectors.Dim(1));
        Bias.EnsureShape("dictionary bias", featureVectors.Dim(1));
    }

    /// <summary>
    /// Random unit feature vectors, optionally orthogonalised (<paramref name="orthogonalizeSteps"/> &gt; 0) and with a
    /// bias that is zero, a random unit vector, or a random direction of norm <paramref name="biasNorm"/>.
    /// </summary>
    public static FeatureDictionary CreateRandom(int numFeatures, int hiddenDim, Rng rng, Compute compute, DictionaryBias bias = DictionaryBias.None,
        float biasNorm = 1, int orthogonalizeSteps = 0, float orthogonalizeLr = 0.01f, float targetCosSim = 0)
    {
        if (numFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(numFeatures), $"num_features must be positive, got {numFeatures}");
        if (hiddenDim <= 0) throw new ArgumentOutOfRangeException(nameof(hiddenDim), $"hidden_dim must be positive, got {hiddenDim}");
        if (bias == DictionaryBias.GivenNorm && !(biasNorm >= 0 && float.IsFinite(biasNorm)))
            throw new ArgumentOutOfRangeException(nameof(biasNorm), $"bias norm must be finite and non-negative, got {biasNorm}");
        var v = Tensor.Uninitialized(numFeatures, hiddenDim);
        rng.FillNormal(v.Span);
        NormalizeRows(v);
        if (orthogonalizeSteps > 0) Orthogonalize(v, orthogonalizeSteps, orthogonalizeLr, compute, targetCosSim);
        var b = new Tensor(hiddenDim);
        if (bias != DictionaryBias.None)
        {
            rng.FillNormal(b.Span);
            float n = TensorPrimitives.Norm(b.Span);
            TensorPrimitives.Multiply(b.Span, (bias == DictionaryBias.RandomUnit ? 1f : biasNorm) / Math.Max(n, 1e-8f), b.Span);
        }
        return new FeatureDictionary(v, b);
    }

    /// <summary>h = f·V + bias for dense f [batch, num_features].</summary>
    public Tensor Forward(Tensor featureActivations, Compute compute)
    {
        if (featureActivations.Rank != 2 || featureActivations.Dim(1) != NumFeatures)
            throw new ArgumentException($"feature activations: expected [batch, {NumFeatures}], got [{featureActivations.ShapeString}]");
        var h = Tensor.Uninitialized(featureActivations.Dim(0), HiddenDim);
        Gemm.MatMul(featureActivations, FeatureVectors, h, compute: compute);
        Ops.AddRowVector(h, Bias.Span, compute: compute);
        return h;
    }

    /// <summary>
    /// The same product, skipping zero activations: each row sums only the feature vectors that fire. Much faster
    /// than <see cref="Forward(Tensor, Compute)"/> when few features fire per row.
    /// </summary>
    public Tensor ForwardSparse(Tensor featureActivations, Compute compute)
    {
        if (featureActivations.Rank != 2 || featureActivations.Dim(1) != NumFeatures)
            throw new ArgumentException($"feature activations: expected [batch, {NumFeatures}], got [{featureActivations.ShapeString}]");
        return Forward(SparseCodes.FromDense(featureActivations, compute), compute);
    }

    /// <summary>h = f·V + bias for sparse feature activations (each row sums its firing features' vectors, in index order).</summary>
    public Tensor Forward(SparseCodes featureActivations, Compute compute)
    {
        if (featureActivations.Cols != NumFeatures)
            throw new ArgumentException($"feature activations: expected {NumFeatures} features, got {featureActivations.Cols}");
        var h = Tensor.Uninitialized(featureActivations.Rows, HiddenDim);
        SparseKernels.Decode(featureActivations, FeatureVectors, h, compute, Bias.Span);
        return h;
    }

    /// <summary>Scales every row of v to unit norm (rows of norm below 1e-8 are divided by 1e-8).</summary>
    public static void NormalizeRows(Tensor v)
    {
        for (int r = 0; r < v.Rows; r++)
        {
            var row = v.Row(r);
            TensorPrimitives.Multiply(row, 1f / Math.Max(TensorPrimitives.Norm(row), 1e-8f), row);
        }
    }

    /// <summary>
    /// L = Σ_{i≠j}(vᵢ·vⱼ − target)² + n·Σᵢ(vᵢ·vᵢ − 1)² and its gradient into <paramref name="grad"/> [n, d], forming the
    /// Gram matrix in row chunks of <paramref name="gram"/>'s height.
    /// </summary>
    internal static double OrthogonalityLoss(Tensor v, Tensor grad, float targetCosSim, Tensor gram, Compute compute)
    {
        int n = v.Dim(0), chunkRows = gram.Dim(0);
        double loss = 0;
        for (int r0 = 0; r0 < n; r0 += chunkRows)
        {
            int rows = Math.Min(chunkRows, n - r0);
            var g = gram.RowSlice(0, rows);
            Gemm.MatMul(v.RowSlice(r0, rows), v, g, compute, Trans.No, Trans.Yes);
            // D_ij = G_ij − target off the diagonal and n·(G_ii − 1) on it; ∇ᵢ = 4·Σⱼ D_ij vⱼ (D is symmetric).
            for (int i = 0; i < rows; i++)
            {
                var gr = g.Row(i);
                float diag = gr[r0 + i];
                TensorPrimitives.Subtract(gr, targetCosSim, gr);
                gr[r0 + i] = 0;
                loss += TensorPrimitives.Dot(gr, gr);
                double dd = diag - 1;
                loss += n * dd * dd;
                gr[r0 + i] = (float)(n * dd);
            }
            Gemm.MatMul(g, v, grad.RowSlice(r0, rows), alpha: 4, compute: compute);
        }
        return loss;
    }

    /// <summary>
    /// Pushes the rows of v [n, d] apart by Adam on L = Σ_{i≠j}(vᵢ·vⱼ − target)² + n·Σᵢ(vᵢ·vᵢ − 1)², then renormalises
    /// them. The Gram matrix is formed <paramref name="chunkRows"/> rows at a time (chunk × n floats), so 16k × 768
    /// fits in memory. Returns the loss at the last step.
    /// </summary>
    public static double Orthogonalize(Tensor v, int steps, float lr, Compute compute, float targetCosSim = 0, int chunkRows = 1024)
    {
        if (v.Rank != 2) throw new ArgumentException($"orthogonalize needs a 2-D tensor, got [{v.ShapeString}]");
        if (steps < 0) throw new ArgumentOutOfRangeException(nameof(steps), $"steps must be non-negative, got {steps}");
        if (!(lr > 0)) throw new ArgumentOutOfRangeException(nameof(lr), $"learning rate must be positive, got {lr}");
        int n = v.Dim(0), d = v.Dim(1);
        chunkRows = Math.Clamp(chunkRows, 1, n);
        NormalizeRows(v);
        var grad = Tensor.Uninitialized(n, d);
        var m = new float[n * d];
        var s = new float[n * d];
        var gram = Tensor.Uninitialized(chunkRows, n);
        const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
        double loss = 0;
        for (int step = 1; step <= steps; step++)
        {
            loss = OrthogonalityLoss(v, grad, targetCosSim, gram, compute);
            float c1 = 1 - MathF.Pow(beta1, step), c2 = 1 - MathF.Pow(beta2, step);
            var vs = v.Span; var gs = grad.Span;
            for (int i = 0; i < vs.Length; i++)
            {
                float gi = gs[i];
                m[i] = beta1 * m[i] + (1 - beta1) * gi;
                s[i] = beta2 * s[i] + (1 - beta2) * gi * gi;
                vs[i] -= lr * (m[i] / c1) / (MathF.Sqrt(s[i] / c2) + eps);
            }
        }
        NormalizeRows(v);
        return loss;
    }
}
