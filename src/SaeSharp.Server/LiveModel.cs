using SaeSharp.Analysis;
using SaeSharp.Evals;
using SaeSharp.Models;
using SaeSharp.Tensors;
using SaeSharp.Text;

namespace SaeSharp.Server;

/// <summary>
/// The model and SAE behind a store's live pages (text search, steering), from paths fixed at start: the model
/// (the store's <c>model_path</c> or --model) and the SAE (the store's <c>sae_path</c>). The tokenizer is loaded at
/// start so a request's token count is checked before it is queued; the model and SAE are loaded by the first job
/// that needs them. Jobs on one model run one at a time (<see cref="Use{T}"/>).
/// </summary>
public sealed class LiveModel
{
    private readonly object _gate = new();
    private readonly Compute _compute;
    private readonly string? _fallbackHook;
    private HookedTransformer? _model;
    private HookedSae? _sae;
    private string[]? _tokenStrings;

    internal LiveModel(string modelPath, string saeDir, string? fallbackHook, Compute compute)
    {
        ModelPath = modelPath;
        SaeDir = saeDir;
        _fallbackHook = fallbackHook;
        _compute = compute;
        Tokenizer = Tokenizers.Load(Directory.Exists(modelPath) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath))!);
    }

    public string ModelPath { get; }
    public string SaeDir { get; }
    public ITokenizer Tokenizer { get; }
    public bool Loaded => _model is not null;

    /// <summary>The prompt's token count as steering encodes it (BOS first where the tokenizer has its own).</summary>
    public int CountTokens(string text) =>
        Tokenizer.EncodeDocument(text).Length;

    /// <summary>Runs <paramref name="work"/> with the loaded model, SAE and token strings, one job at a time; <paramref name="loading"/> is told before a first load.</summary>
    public T Use<T>(Action loading, Func<HookedTransformer, HookedSae, string[], T> work)
    {
        lock (_gate)
        {
            if (_model is null)
            {
                loading();
                var model = HookedTransformer.Load(ModelPath, _compute);
                _sae = HookedSae.Load(model, SaeDir, _compute, fallbackHook: _fallbackHook);
                _tokenStrings = FeatureAnalyzer.TokenStrings(Tokenizer, Math.Max(model.Config.VocabSize, Tokenizer.VocabSize));
                _model = model;
            }
            return work(_model, _sae!, _tokenStrings!);
        }
    }
}
