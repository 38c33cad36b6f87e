using System.CommandLine;
using SaeSharp.Models;

namespace SaeSharp.Cli.Commands;

/// <summary>
/// A command's --model and --revision: a model folder or llama2.c .bin, or the id of a model already in the local
/// Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub, from the environment or .env) at a branch,
/// tag or commit. Every command resolves them the same way, offline.
/// </summary>
public sealed class ModelOption
{
    public ModelOption(string description, bool required = true)
    {
        Model = new Option<string>("--model") { Description = description + "; or a Hugging Face id (org/name) already in the local Hugging Face cache", Required = required };
        Revision = new Option<string?>("--revision") { Description = "With a Hugging Face id: the branch, tag or commit of the cached snapshot (default main)" };
    }

    public Option<string> Model { get; }
    public Option<string?> Revision { get; }

    public void AddTo(Command command)
    {
        command.Add(Model);
        command.Add(Revision);
    }

    /// <summary>The hub cache the environment (with .env) names.</summary>
    public static string HubDirectory() => HuggingFaceCache.HubDirectory(ConfigSources.LoadEnvironment().Get);

    /// <summary>Where the given model is; null when --model was not given.</summary>
    public ModelLocation? Resolve(ParseResult p)
    {
        if (p.GetValue(Model) is not { } model)
        {
            if (p.GetValue(Revision) is not null) throw new ArgumentException("--revision goes with --model (a Hugging Face id)");
            return null;
        }
        return HuggingFaceCache.Locate(model, p.GetValue(Revision), HubDirectory());
    }
}
