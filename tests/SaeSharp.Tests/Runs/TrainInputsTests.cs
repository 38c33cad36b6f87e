using SaeSharp.IO;
using SaeSharp.Runs;
using SaeSharp.Tests.IO;
using Tensor = SaeSharp.Tensors.Tensor;

namespace SaeSharp.Tests.Runs;

public class TrainInputsTests
{
    [Fact]
    public void NonFiniteActivationsNameTheFileRowAndColumn()
    {
        using var dir = new TempDir();
        var data = new Tensor(6, 4);
        data[3, 1] = float.NaN;
        string path = dir.File("acts.npy");
        Npy.Write(path, data);
        var e = Assert.Throws<InvalidDataException>(() => TrainInputs.ReadActivations(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("row 3", e.Message);
        Assert.Contains("column 1", e.Message);
        Assert.Contains("NaN", e.Message);
    }
}
