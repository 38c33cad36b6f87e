namespace SaeSharp.Tensors;

public static partial class Gemm
{
    // Placeholder body replaced by the packed kernel; simple and correct.
    private static unsafe void Run(Trans ta, Trans tb, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, Compute compute)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++)
                    s += (ta == Trans.No ? a[i * lda + p] : a[p * lda + i]) * (tb == Trans.No ? b[p * ldb + j] : b[j * ldb + p]);
                c[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j]);
            }
    }
}
