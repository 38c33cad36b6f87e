#:project ../src/SaeSharp/SaeSharp.csproj
#:property PublishAot=false
// (PublishAot=false: the library reads and writes JSON by reflection, which file-based programs turn off by default.)
// SaeSharp from a C# script: load a model, read and edit activations through hook points, train a small SAE on
// a hook's activations streamed from text, evaluate it spliced into the model, look at what it learned and steer
// the model's generation with one of its features. Run from the repository root:
//   dotnet run examples/quickstart.cs -- [model folder] [text file] [run folder]
// (defaults: ../shared/models/stories260K, ../shared/corpora/tinystories_validation_head.txt, runs/quickstart).
using SaeSharp.Analysis;
using SaeSharp.Models;
using SaeSharp.Runs;
using SaeSharp.Saes;
using SaeSharp.Tensors;
using SaeSharp.Text;

string modelDir = args.Length > 0 ? args[0] : "../shared/models/stories260K";
string text = args.Length > 1 ? args[1] : "../shared/corpora/tinystories_validation_head.txt";
string runDir = args.Length > 2 ? args[2] : "runs/quickstart";
var compute = Compute.All;
const string Hook = "blocks.2.hook_resid_post";

// 1. A model and its tokenizer.
var model = HookedTransformer.Load(modelDir, compute);
var tokenizer = Tokenizers.Load(modelDir);
int[] prompt = tokenizer.Encode("Once upon a time, there was a little girl", addBos: true);
Console.WriteLine($"model: {model.Config.NLayers} layers, d_model {model.Config.DModel}, vocab {model.Config.VocabSize}; prompt of {prompt.Length} tokens");

// 2. Read a hook's activations, then edit them during a forward pass and see the logits move.
var clean = model.RunWithCache(prompt, [Hook]);
var resid = clean.Cache[Hook];
Console.WriteLine($"{Hook}: [{resid.ShapeString}], last position's norm {System.Numerics.Tensors.TensorPrimitives.Norm(resid.Row(resid.Rows - 1)):F3}");
var zeroed = model.Forward(prompt, new HookSet().Edit(Hook, t => t.Span.Clear()));
int last = prompt.Length - 1;
double change = 0;
for (int v = 0; v < model.Config.VocabSize; v++) change = Math.Max(change, Math.Abs(zeroed[last, v] - clean.Logits![last, v]));
Console.WriteLine($"zeroing {Hook} moves the last position's logits by up to {change:F3}");

// 3. Train a small TopK SAE on that hook, streamed from the text (SAELens's batching: BOS, separators, a mixing buffer).
var settings = new TrainSettings
{
    Architecture = "topk", DSae = 256, K = 8, Steps = 150, BatchSize = 512, Lr = 2e-3, Seed = 1, CheckpointEvery = 0, HookName = Hook,
    Contexts = new() { ContextSize = 64, StoreBatchSizePrompts = 16 }, NBatchesInBuffer = 4,
};
var data = TrainInputs.Open(settings, compute, activations: null, cache: null, model: modelDir, dataset: text, tokensFile: null);
var result = TrainRun.Execute(settings, data, runDir, compute, RunFolderMode.Overwrite, new TextReporter(Console.Out));
Console.WriteLine(TrainRun.DescribeResult(result));

// 4. The saved SAE loads back in SAELens's layout; encode the prompt and list the strongest latents at the last token.
var sae = SaeFiles.Load(runDir, compute);
var codes = sae.Encode(resid);
var top = Enumerable.Range(0, sae.Config.DSae).OrderByDescending(j => codes[last, j]).Take(5).ToList();
Console.WriteLine($"strongest latents at the last token: {string.Join(", ", top.Select(j => $"{j} ({codes[last, j]:F2})"))}");
Console.WriteLine($"reconstruction of the prompt's activations: explained variance {Reconstruction.ExplainedVariance(resid, sae.Reconstruct(resid)):F3}");

// 5. Evaluate it as SAELens does: splice it into the model at its hook and measure what the model keeps.
var eval = EvalRun.Execute(new EvalSettings { Tokens = 32 * 64, Contexts = new() { ContextSize = 64, StoreBatchSizePrompts = 8 } },
    modelDir, [runDir], dataset: text, tokensFile: null, outDir: Path.Combine(runDir, "eval"), TextReporter.Silent, compute);
var r = eval.Results[0];
Console.WriteLine($"spliced in: ce_loss_score {r["ce_loss_score"]:F3}, kl_div_score {r["kl_div_score"]:F3}, explained_variance {r["explained_variance"]:F3}, l0 {r["l0"]:F1}");

// 6. Steer generation with the prompt's strongest feature (drrik's SAESteering): the same seed at every strength.
var steering = new SaeSteering(model, SaeSharp.Evals.HookedSae.Load(model, runDir, compute), tokenizer) { Seed = 1 };
var feature = steering.FindSteeringFeatures("Once upon a time, there was a little girl", topK: 1)[0];
Console.WriteLine($"steering with feature {feature.FeatureIdx} (mean activation {feature.Activation:F2} on the prompt):");
foreach (var (label, continuation) in steering.CompareSteering("Once upon a time, there was a little girl", feature.FeatureIdx, [0, 8], maxNewTokens: 24))
    Console.WriteLine($"  {label}: {continuation}");
