using System.Globalization;
using System.Text.Json.Nodes;

namespace SaeSharp.Server;

/// <summary>One checkpoint (column) of a `saesharp match` output: its name, SAE folder, step and summary counts.</summary>
public sealed record MatchCheckpoint(string Name, string Path, long? Step, bool Reference, int DSae, long Matched, long Unmatched, long Dead,
    double? MeanMatchedDistance, double? MeanMatchedDecoderCosine, IReadOnlyDictionary<string, double> FractionMatched);

/// <summary>A reference latent's partner at one checkpoint (matches.csv): partner latent (null when none), distance, decoder cosine and status.</summary>
public sealed record MatchCell(int? Latent, double? Distance, double? DecoderCosine, string Status);

/// <summary>
/// A `saesharp match` output folder read at start (README "Match output"): <c>match.json</c> for the checkpoints and
/// their counts, <c>matches.csv</c> for every reference latent's partner at every checkpoint. Only these two files of
/// the folder are read.
/// </summary>
public sealed class MatchOutput
{
    // The file names are the writer's (Runs/MatchRun), so reader and writer cannot drift apart.
    private const string JsonFile = Runs.MatchRun.JsonFile, MatchesFile = Runs.MatchRun.MatchesFile;
    private static readonly string[] MatchesHeader = ["checkpoint", "reference_latent", "latent", "distance", "decoder_cosine", "status"];
    private static readonly HashSet<string> Statuses = new(["matched", "unmatched", "unassigned", "dead"], StringComparer.Ordinal);

    private readonly MatchCell[,] _cells;

    public int Id { get; }
    public string Folder { get; }
    public string Name { get; }
    public double? DistanceThreshold { get; }
    public string MatchedBy { get; }
    public IReadOnlyList<MatchCheckpoint> Checkpoints { get; }
    public int ReferenceColumn { get; }
    /// <summary>Latents of the reference SAE (rows of matches.csv per checkpoint).</summary>
    public int ReferenceLatents { get; }

    public MatchCheckpoint Reference => Checkpoints[ReferenceColumn];
    public MatchCell Cell(int referenceLatent, int column) => _cells[referenceLatent, column];

    public MatchOutput(int id, string folder)
    {
        Id = id;
        Folder = System.IO.Path.GetFullPath(folder);
        Name = System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(Folder));
        string jsonPath = System.IO.Path.Combine(Folder, JsonFile), csvPath = System.IO.Path.Combine(Folder, MatchesFile);
        if (!File.Exists(jsonPath)) throw new FileNotFoundException($"--match {folder}: no {JsonFile} (not a `saesharp match` output folder)", jsonPath);
        if (!File.Exists(csvPath)) throw new FileNotFoundException($"--match {folder}: no {MatchesFile}", csvPath);
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(jsonPath)) as JsonObject ?? throw new InvalidDataException($"{jsonPath}: expected a JSON object"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{jsonPath}: not valid JSON: {e.Message}"); }
        var list = root["checkpoints"] as JsonArray ?? throw new InvalidDataException($"{jsonPath}: no 'checkpoints' list");
        ReferenceColumn = Int(root["reference_column"], jsonPath, "reference_column");
        if (ReferenceColumn < 0 || ReferenceColumn >= list.Count) throw new InvalidDataException($"{jsonPath}: reference_column {ReferenceColumn} is not a column of its {list.Count} checkpoints");
        var settings = root["settings"] as JsonObject;
        DistanceThreshold = Double(settings?["distance_threshold"]);
        MatchedBy = (settings?["by"] as JsonValue)?.TryGetValue(out string? by) == true ? by! : "activations";
        Checkpoints = list.Select((node, c) =>
        {
            var o = node as JsonObject ?? throw new InvalidDataException($"{jsonPath}: checkpoints[{c}] is not an object");
            string Text(string key) => (o[key] as JsonValue)?.TryGetValue(out string? v) == true ? v! : throw new InvalidDataException($"{jsonPath}: checkpoints[{c}].{key} must be a string");
            var fractions = new Dictionary<string, double>(StringComparer.Ordinal);
            if (o["fraction_matched"] is JsonObject f)
                foreach (var (k, v) in f) if (Double(v) is double d) fractions[k] = d;
            return new MatchCheckpoint(Text("name"), Text("path"), o["step"] is null ? null : (long?)Int(o["step"], jsonPath, $"checkpoints[{c}].step"),
                c == ReferenceColumn, Int(o["d_sae"], jsonPath, $"checkpoints[{c}].d_sae"), Long(o["matched"]), Long(o["unmatched"]), Long(o["dead_latents"]),
                Double(o["mean_matched_distance"]), Double(o["mean_matched_decoder_cosine"]), fractions);
        }).ToArray();
        ReferenceLatents = Checkpoints[ReferenceColumn].DSae;
        _cells = ReadMatches(csvPath);
    }

    private MatchCell[,] ReadMatches(string path)
    {
        var column = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < Checkpoints.Count; c++) column[Checkpoints[c].Name] = c;
        var cells = new MatchCell[ReferenceLatents, Checkpoints.Count];
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            var f = text.Split(',');
            if (line == 1)
            {
                if (!f.SequenceEqual(MatchesHeader)) throw new InvalidDataException($"{path}: header '{text}', expected '{string.Join(",", MatchesHeader)}'");
                continue;
            }
            if (text.Length == 0) continue;
            string Where() => $"{path} line {line}";
            if (f.Length != MatchesHeader.Length) throw new InvalidDataException($"{Where()}: {f.Length} fields, expected {MatchesHeader.Length}");
            if (!column.TryGetValue(f[0], out int c)) throw new InvalidDataException($"{Where()}: checkpoint '{f[0]}' is not in {JsonFile}");
            if (!int.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out int r) || r >= ReferenceLatents)
                throw new InvalidDataException($"{Where()}: reference_latent '{f[1]}' is not below the reference's d_sae {ReferenceLatents}");
            int? latent = f[2].Length == 0 ? null : int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out int l) ? l
                : throw new InvalidDataException($"{Where()}: latent '{f[2]}' is not an index");
            if (!Statuses.Contains(f[5])) throw new InvalidDataException($"{Where()}: status '{f[5]}', expected one of {string.Join(", ", Statuses)}");
            cells[r, c] = new MatchCell(latent, Number(f[3], Where), Number(f[4], Where), f[5]);
        }
        for (int r = 0; r < ReferenceLatents; r++)
            for (int c = 0; c < Checkpoints.Count; c++)
                if (cells[r, c] is null) throw new InvalidDataException($"{path}: no row for reference latent {r} at checkpoint {Checkpoints[c].Name}");
        return cells;
    }

    private static double? Number(string s, Func<string> where) => s.Length == 0 ? null
        : double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : throw new InvalidDataException($"{where()}: '{s}' is not a number");

    private static int Int(JsonNode? n, string path, string key) =>
        (n as JsonValue)?.TryGetValue(out int v) == true ? v : throw new InvalidDataException($"{path}: {key} must be an integer");

    private static long Long(JsonNode? n) => (n as JsonValue)?.TryGetValue(out long v) == true ? v : 0;

    private static double? Double(JsonNode? n) => (n as JsonValue)?.TryGetValue(out double v) == true ? v : null;
}
