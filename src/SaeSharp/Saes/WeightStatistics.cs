using System.Numerics.Tensors;

namespace SaeSharp.Saes;

/// <summary>Per-latent statistics of an SAE's weights (no data needed).</summary>
public static class WeightStatistics
{
    /// <summary>‖W_dec[j]‖ per latent.</summary>
    public static float[] DecoderNorms(Sae sae) => Tensors.Ops.RowNorms(sae.WDec);

    /// <summary>
    /// Cosine between latent j's encoder column W_enc[:, j] and its decoder row W_dec[j] (0 where either is zero);
    /// null when the decoder writes another width than the encoder reads (transcoders with d_out ≠ d_in).
    /// </summary>
    public static float[]? EncoderDecoderCosines(Sae sae)
    {
        var c = sae.Config;
        if (sae.DOut != c.DIn) return null;
        var encoderRows = Tensors.Ops.Transpose(sae.WEnc, sae.Compute);
        var cos = new float[c.DSae];
        for (int j = 0; j < c.DSae; j++)
        {
            float v = TensorPrimitives.CosineSimilarity(encoderRows.Row(j), sae.WDec.Row(j));
            cos[j] = float.IsNaN(v) ? 0 : v;
        }
        return cos;
    }
}
