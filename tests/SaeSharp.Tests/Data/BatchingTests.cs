using SaeSharp.Data;
using Xunit;

namespace SaeSharp.Tests.Data;

public class BatchingTests
{
    private static List<int[]> Run(BatchingOptions o, params int[][] seqs) => SequenceBatcher.ConcatAndBatch(seqs, o).ToList();

    [Fact]
    public void ConcatDropsTrailingPartial()
    {
        var r = Run(new BatchingOptions(3), new[] { 1, 2 }, new[] { 3, 4, 5, 6, 7 }, new[] { 8 });
        Assert.Equal(new[] { new[] { 1, 2, 3 }, new[] { 4, 5, 6 } }, r);
    }

    [Fact]
    public void BeginBatchTokenAtEachWindowStart()
    {
        var r = Run(new BatchingOptions(4, BeginBatchToken: 0), new[] { 1, 2, 3, 4, 5, 6, 7 });
        Assert.Equal(new[] { new[] { 0, 1, 2, 3 }, new[] { 0, 4, 5, 6 } }, r);
    }

    [Fact]
    public void BeginBatchTokenNotDuplicatedWhenPresent()
    {
        var r = Run(new BatchingOptions(3, BeginBatchToken: 0), new[] { 0, 1, 2, 3 });
        Assert.Equal(new[] { new[] { 0, 1, 2 } }, r);
    }

    [Fact]
    public void SeparatorBetweenSequencesButNotAtWindowStart()
    {
        var r = Run(new BatchingOptions(4, SequenceSeparatorToken: 9), new[] { 1, 2 }, new[] { 3, 4, 5 }, new[] { 6, 7, 8, 10 });
        // [1,2,9,3] then continuing seq [4,5] + sep before new seq [6] -> [4,5,9,6], then [7,8,10] partial dropped
        Assert.Equal(new[] { new[] { 1, 2, 9, 3 }, new[] { 4, 5, 9, 6 } }, r);
    }

    [Fact]
    public void BeginSequenceTokenPrependedPerSequence()
    {
        var r = Run(new BatchingOptions(4, BeginSequenceToken: 0), new[] { 1, 2 }, new[] { 0, 3, 4, 5, 6 });
        Assert.Equal(new[] { new[] { 0, 1, 2, 0 }, new[] { 3, 4, 5, 6 } }, r);
    }

    [Fact]
    public void DisableConcatPrependsBosAndDropsShort()
    {
        var o = new BatchingOptions(4, BeginSequenceToken: 0, DisableConcatSequences: true);
        var r = Run(o, new[] { 1, 2, 3 }, new[] { 1, 2 }, new[] { 0, 5, 6, 7, 8 }, new[] { 5, 6, 7, 8, 9 });
        Assert.Equal(new[] { new[] { 0, 1, 2, 3 }, new[] { 0, 5, 6, 7 }, new[] { 0, 5, 6, 7 } }, r);
    }

    [Fact]
    public void DisableConcatWithoutBosDropsShortAndTruncates()
    {
        var r = Run(new BatchingOptions(3, DisableConcatSequences: true), new[] { 1, 2 }, new[] { 1, 2, 3, 4 });
        Assert.Equal(new[] { new[] { 1, 2, 3 } }, r);
    }

    [Fact]
    public void DisableConcatUsesBeginBatchTokenAsBos()
    {
        var r = Run(new BatchingOptions(3, BeginBatchToken: 0, DisableConcatSequences: true), new[] { 4, 5 });
        Assert.Equal(new[] { new[] { 0, 4, 5 } }, r);
    }
}

public class TextDatasetTests
{
    private static string Tmp() { var d = Path.Combine(Path.GetTempPath(), "saesharp-data-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(d); return d; }

    [Fact]
    public void TxtModesAndFolder()
    {
        var d = Tmp();
        File.WriteAllText(Path.Combine(d, "a.txt"), "one\ntwo\n\nthree\n");
        File.WriteAllText(Path.Combine(d, "b.jsonl"), "{\"text\":\"x\"}\n{\"text\":\"y\"}\n");
        Assert.Equal(new[] { "one", "two", "three" }, TextDataset.Read(Path.Combine(d, "a.txt")).ToArray());
        Assert.Equal(new[] { "one\ntwo", "three" }, TextDataset.Read(Path.Combine(d, "a.txt"), TxtDocumentMode.BlankLineSeparated).ToArray());
        Assert.Equal(new[] { "one", "two", "three", "x", "y" }, TextDataset.Read(d).ToArray());
    }

    [Fact]
    public void JsonlErrorsNameFileAndLine()
    {
        var d = Tmp();
        var f = Path.Combine(d, "c.jsonl");
        File.WriteAllText(f, "{\"body\":\"x\"}\n{\"text\":\"y\"}\n");
        Assert.Equal(new[] { "x" }, TextDataset.Read(f, textField: "body").Take(1).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => TextDataset.Read(f).ToList());
        Assert.Contains("c.jsonl:1", e.Message);
        Assert.Contains("'text'", e.Message);
        File.WriteAllText(f, "{\"text\":\"y\"}\n{bad\n");
        e = Assert.Throws<InvalidDataException>(() => TextDataset.Read(f).ToList());
        Assert.Contains("c.jsonl:2", e.Message);
    }

    [Fact]
    public void TokenizeFeedsBatcher()
    {
        var docs = new[] { "ab", "cde" };
        var ids = TextDataset.Tokenize(docs, s => s.Select(ch => (int)ch).ToArray());
        var w = SequenceBatcher.ConcatAndBatch(ids, new BatchingOptions(3, BeginBatchToken: 0)).ToList();
        Assert.Equal(new[] { new[] { 0, 'a', 'b' }, new[] { 0, 'c', 'd' } }, w);
    }

    [Fact]
    public void TokenFileRoundTrip()
    {
        var f = Path.Combine(Tmp(), "t.safetensors");
        var docs = new[] { new[] { 1, 2, 3 }, Array.Empty<int>(), new[] { 7 } };
        TokenFile.Write(f, docs);
        Assert.Equal(docs, TokenFile.Read(f));
    }
}
