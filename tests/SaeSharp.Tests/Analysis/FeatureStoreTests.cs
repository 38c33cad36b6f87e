using System.Collections;
using Microsoft.Data.Sqlite;
using SaeSharp.Analysis;
using SaeSharp.Tensors;
using SaeSharp.Tests.IO;
using static SaeSharp.Tests.Evals.EvalFixtures;

namespace SaeSharp.Tests.Analysis;

/// <summary>The SQLite feature store: what is written reads back the same, pages sort as asked, bad files are refused.</summary>
public class FeatureStoreTests
{
    [SharedFact(Gpt2Weights)]
    public void AnAnalysisReadsBackExactly()
    {
        using var dir = new TempDir();
        var a = new PlantedFeatures(sequences: 4).Analyze(new FeatureAnalysisOptions(), 2, Compute.All);
        string path = dir.File(FeatureStore.FileName);
        FeatureStore.Write(path, a);
        Assert.False(File.Exists(path + ".tmp"));
        using var store = FeatureStore.Open(path);
        Assert.Equal(a.Summary.SaeName, store.Summary.SaeName);
        Assert.Equal(a.Summary.Positions, store.Summary.Positions);
        Assert.Equal(a.Summary.HookName, store.Summary.HookName);
        Assert.Equal(a.Summary.Metrics["l0"], store.Summary.Metrics["l0"]);
        Assert.Equal(a.Summary.SaeConfig.ToJsonString(), store.Summary.SaeConfig.ToJsonString());
        Assert.Equal(a.Rows, store.Rows);
        for (int j = 0; j < a.Features.Count; j++)
        {
            var want = a[j];
            var got = store.Detail(j);
            Assert.Equal(want.Stats, got.Stats);
            Assert.Equal(want.ActivationHistogram.Counts, got.ActivationHistogram.Counts);
            Assert.Equal(want.DecoderHistogram.Counts, got.DecoderHistogram.Counts);
            Assert.Equal(want.LogitHistogram!.Counts, got.LogitHistogram!.Counts);
            AssertSameExamples(want.TopExamples, got.TopExamples);
            Assert.Equal(want.QuantileGroups.Count, got.QuantileGroups.Count);
            for (int g = 0; g < want.QuantileGroups.Count; g++)
            {
                Assert.Equal(want.QuantileGroups[g] with { Examples = [] }, got.QuantileGroups[g] with { Examples = [] });
                AssertSameExamples(want.QuantileGroups[g].Examples, got.QuantileGroups[g].Examples);
            }
            Assert.Equal(want.TopLogits, got.TopLogits);
            Assert.Equal(want.BottomLogits, got.BottomLogits);
        }
    }

    private static void AssertSameExamples(IReadOnlyList<FeatureExample> want, IReadOnlyList<FeatureExample> got)
    {
        Assert.Equal(want.Count, got.Count);
        for (int i = 0; i < want.Count; i++)
        {
            Assert.Equal((want[i].Kind, want[i].Group, want[i].Rank, want[i].Activation, want[i].Sequence, want[i].Position, want[i].ContextStart, want[i].Text),
                (got[i].Kind, got[i].Group, got[i].Rank, got[i].Activation, got[i].Sequence, got[i].Position, got[i].ContextStart, got[i].Text));
            Assert.Equal(want[i].TokenIds, got[i].TokenIds);
            Assert.Equal(want[i].Tokens, got[i].Tokens);
            Assert.Equal(want[i].Acts, got[i].Acts);
        }
    }

    [SharedFact(Gpt2Weights)]
    public void PagesSortByTheAskedStatistic()
    {
        using var dir = new TempDir();
        var a = new PlantedFeatures(sequences: 3).Analyze(new FeatureAnalysisOptions(), 3, Compute.All);
        FeatureStore.Write(dir.File("f.db"), a);
        using var store = FeatureStore.Open(dir.File("f.db"));
        var byDensity = a.Rows.OrderByDescending(r => r.Density).ThenByDescending(r => r.Feature).ToList();
        Assert.Equal(byDensity.Skip(2).Take(3), store.Page("density", descending: true, offset: 2, limit: 3));
        Assert.Equal(a.Rows.OrderBy(r => r.MaxActivation).ThenBy(r => r.Feature), store.Page("max_activation", false, 0, 100));
        Assert.Throws<ArgumentException>(() => store.Page("density; DROP TABLE features", true, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Detail(a.Features.Count));
    }

    [Fact]
    public void BadFilesAreRefusedWithTheirName()
    {
        using var dir = new TempDir();
        Assert.Throws<FileNotFoundException>(() => FeatureStore.Open(dir.File("missing.db")));
        File.WriteAllText(dir.File("garbage.db"), "not a database at all, just text that is long enough to be a header");
        var e = Assert.Throws<InvalidDataException>(() => FeatureStore.Open(dir.File("garbage.db")));
        Assert.Contains("garbage.db", e.Message);
        // A database of another schema version.
        using (var db = new SqliteConnection($"Data Source={dir.File("v9.db")};Pooling=False"))
        {
            db.Open();
            using var c = db.CreateCommand();
            c.CommandText = "CREATE TABLE schema_version (version INTEGER, description TEXT); INSERT INTO schema_version VALUES (9, 'future');";
            c.ExecuteNonQuery();
        }
        Assert.Contains("version 9", Assert.Throws<InvalidDataException>(() => FeatureStore.Open(dir.File("v9.db"))).Message);
    }

    [SharedFact(Gpt2Weights)]
    public void AFailedWriteLeavesTheOldStore()
    {
        using var dir = new TempDir();
        var a = new PlantedFeatures(sequences: 2).Analyze(new FeatureAnalysisOptions(), 2, Compute.All);
        string path = dir.File(FeatureStore.FileName);
        FeatureStore.Write(path, a);
        var before = File.ReadAllBytes(path);
        var broken = new FeatureAnalysis { Summary = a.Summary, Features = new ThrowingList<FeatureDetail>(a.Features, failAt: 3) };
        Assert.Throws<IOException>(() => FeatureStore.Write(path, broken));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    /// <summary>A list whose enumeration fails part-way, as a write interrupted by an I/O error would.</summary>
    private sealed class ThrowingList<T>(IReadOnlyList<T> inner, int failAt) : IReadOnlyList<T>
    {
        public T this[int index] => inner[index];
        public int Count => inner.Count;
        public IEnumerator<T> GetEnumerator()
        {
            for (int i = 0; i < inner.Count; i++)
            {
                if (i == failAt) throw new IOException("disk full");
                yield return inner[i];
            }
        }
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
