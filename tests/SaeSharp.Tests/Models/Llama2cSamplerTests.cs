namespace SaeSharp.Tests.Models;

public class Llama2cSamplerTests
{
    [Fact]
    public void CoinsFollowXorshift64Star()
    {
        // run.c random_u32 / random_f32 from seed 133742, computed with Python integers.
        var s = new SaeSharp.Models.Llama2cSampler(1, 0.9f, 133742);
        Assert.Equal(3033531262u, s.NextUInt32());
        Assert.Equal(2674377904u >> 8, (uint)(s.NextFloat() * 16777216.0f));
        Assert.Equal(0.5385057330131531f, s.NextFloat());
    }

    [Fact]
    public void TopPDropsTokensBelowTheCutoffAndScalesTheCoin()
    {
        // Logits for probabilities 0.5, 0.3, 0.15, 0.05 (temperature 1). top-p 0.7: the sorted running sum passes 0.7 at
        // the second token, so the draw is over {0, 1} with the coin scaled by 0.8: coin < 0.625 picks 0, else 1.
        float[] logits = [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.05f)];
        var probe = new SaeSharp.Models.Llama2cSampler(1, 0.7f, 99);
        var sampler = new SaeSharp.Models.Llama2cSampler(1, 0.7f, 99);
        for (int i = 0; i < 200; i++)
        {
            float coin = probe.NextFloat();
            Assert.Equal(coin * 0.8f < 0.5f ? 0 : 1, sampler.Next(logits));
        }
        Assert.Throws<ArgumentException>(() => new SaeSharp.Models.Llama2cSampler(1, 0.9f, 0));
    }
}
