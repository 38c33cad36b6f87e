using SaeSharp.IO;
using SaeSharp.Synthetic;
using SaeSharp.Tensors;

namespace SaeSharp.Tests.Synthetic;

public class SynthCliTests
{
    [Fact]
    public void BuildThenScoreTheTrueDictionary()
    {
        var dir = Directory.CreateTempSubdirectory("synth-cli");
        try
        {
            string model = Path.Combine(dir.FullName, "toy");
            var o = new StringWriter(); var e = new StringWriter();
            Assert.Equal(0, SaeSharp.Cli.Program.Run(["synth", "build", "--preset", "toy", "--seed", "3", "--out", model, "--ortho-steps", "5"], o, e));
            Assert.Contains("saved 64 features in 32 dimensions", o.ToString());
            var m = SyntheticModel.Load(model);
            Assert.Equal(5, m.Config.Orthogonalize!.Steps);
            string w = Path.Combine(dir.FullName, "sae.safetensors");
            new SafetensorsWriter().Add("W_dec", m.Dictionary.FeatureVectors).Write(w);
            o = new StringWriter();
            Assert.Equal(0, SaeSharp.Cli.Program.Run(["synth", "mcc", "--synthetic-model", model, "--weights", w], o, e));
            Assert.Contains("mcc: 1.000000", o.ToString());
            e = new StringWriter();
            Assert.Equal(1, SaeSharp.Cli.Program.Run(["synth", "build", "--preset", "huge", "--out", model], new StringWriter(), e));
            Assert.Contains("unknown synthetic preset 'huge'", e.ToString());
        }
        finally { dir.Delete(true); }
    }
}
