namespace SaeSharp.Tensors;

/// <summary>Whether a GEMM operand is used as stored or transposed.</summary>
public enum Trans { No, Yes }

/// <summary>
/// Single-precision matrix multiply: C = alpha·op(A)·op(B) + beta·C, row-major, with leading dimensions.
/// op(A) is [m, k], op(B) is [k, n], C is [m, n]. beta = 0 overwrites C (NaNs in C are not propagated).
/// </summary>
public static partial class Gemm
{
    public static void Multiply(Trans transA, Trans transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc, Compute compute)
    {
        Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        if (m == 0 || n == 0) return;
        unsafe
        {
            fixed (float* pa = a, pb = b, pc = c)
                Run(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc, compute, Blocking);
        }
    }

    /// <summary>The same product with a given blocking (tests run every blocking the code can choose).</summary>
    internal static void Multiply(Trans transA, Trans transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc, Compute compute, GemmBlocking blocking)
    {
        Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        if (m == 0 || n == 0) return;
        unsafe
        {
            fixed (float* pa = a, pb = b, pc = c)
                Run(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc, compute, blocking);
        }
    }

    /// <summary>c = alpha·op(a)·op(b) + beta·c for 2-D tensors (shapes checked).</summary>
    public static void MatMul(Tensor a, Tensor b, Tensor c, Compute compute, Trans transA = Trans.No, Trans transB = Trans.No,
        float alpha = 1, float beta = 0)
    {
        if (a.Rank != 2 || b.Rank != 2 || c.Rank != 2) throw new ArgumentException("MatMul needs 2-D tensors");
        int m = transA == Trans.No ? a.Dim(0) : a.Dim(1);
        int k = transA == Trans.No ? a.Dim(1) : a.Dim(0);
        int kb = transB == Trans.No ? b.Dim(0) : b.Dim(1);
        int n = transB == Trans.No ? b.Dim(1) : b.Dim(0);
        if (k != kb) throw new ArgumentException($"MatMul inner dimensions differ: op(a) is [{m}, {k}], op(b) is [{kb}, {n}]");
        c.EnsureShape("MatMul output", m, n);
        Multiply(transA, transB, m, n, k, alpha, a.Span, a.Dim(1), b.Span, b.Dim(1), beta, c.Span, n, compute);
    }

    /// <summary>Returns a new [m, n] tensor op(a)·op(b).</summary>
    public static Tensor MatMul(Tensor a, Tensor b, Compute compute, Trans transA = Trans.No, Trans transB = Trans.No)
    {
        int m = transA == Trans.No ? a.Dim(0) : a.Dim(1);
        int n = transB == Trans.No ? b.Dim(1) : b.Dim(0);
        var c = Tensor.Uninitialized(m, n);
        MatMul(a, b, c, compute, transA, transB, 1, 0);
        return c;
    }

    private static void Validate(Trans ta, Trans tb, int m, int n, int k, int aLen, int lda, int bLen, int ldb, int cLen, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"negative GEMM size m={m} n={n} k={k}");
        int aRows = ta == Trans.No ? m : k, aCols = ta == Trans.No ? k : m;
        int bRows = tb == Trans.No ? k : n, bCols = tb == Trans.No ? n : k;
        CheckOperand("A", aRows, aCols, lda, aLen);
        CheckOperand("B", bRows, bCols, ldb, bLen);
        CheckOperand("C", m, n, ldc, cLen);
    }

    private static void CheckOperand(string name, int rows, int cols, int ld, int len)
    {
        if (ld < Math.Max(1, cols)) throw new ArgumentException($"GEMM {name}: leading dimension {ld} is smaller than its {cols} columns");
        long need = rows == 0 || cols == 0 ? 0 : (long)(rows - 1) * ld + cols;
        if (need > len) throw new ArgumentException($"GEMM {name}: [{rows}, {cols}] with leading dimension {ld} needs {need} floats, span has {len}");
    }
}
