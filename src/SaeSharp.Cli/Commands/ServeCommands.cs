using System.CommandLine;
using SaeSharp.Server;
using SaeSharp.Tensors;

namespace SaeSharp.Cli.Commands;

/// <summary>`saesharp serve`: the local feature browser over feature stores (ASP.NET Core, SaeSharp.Server).</summary>
public static class ServeCommands
{
    public static Command Build()
    {
        var cmd = new Command("serve", "A local feature browser over feature stores (features.db): SAE overview, feature list and pages, live text search and steering, " +
                                       "feature matching through checkpoints; JSON endpoints behind every page. Bound to 127.0.0.1 unless --host says otherwise");
        var store = new Option<string[]>("--store") { Description = "A folder holding features.db (saesharp analyze's --out), or the file; repeat for several", Required = true };
        var model = new Option<string?>("--model") { Description = "Model for live search and steering, instead of the model each analysis ran" };
        var eval = new Option<string[]>("--eval") { Description = "An eval.json whose metrics the overview shows for its SAEs (one beside a store is read too); repeatable" };
        var match = new Option<string[]>("--match") { Description = "A saesharp match output folder (match.json, matches.csv) to follow latents through checkpoints; repeatable" };
        var settingOptions = new SettingOptions<ServeSettings>("serve",
        [
            ("host", new Option<string>("--host") { Description = "Address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)" }),
            ("port", new Option<int>("--port") { Description = "Port (default 5151; 0 picks a free one)" }),
            ("max_concurrent_jobs", new Option<int>("--max-concurrent-jobs") { Description = "Live model jobs running at once (default 1)" }),
            ("job_timeout_seconds", new Option<double>("--job-timeout-seconds") { Description = "A live job is stopped after this long (default 120)" }),
        ]);
        foreach (var o in new Option[] { store, model, eval, match }) cmd.Add(o);
        settingOptions.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var settings = settingOptions.Bind(p, new ServeSettings());
            var inputs = new ServeInputs
            {
                Stores = p.GetValue(store) ?? [], ModelPath = p.GetValue(model), EvalFiles = p.GetValue(eval) ?? [], MatchDirs = p.GetValue(match) ?? [],
            };
            var o = p.InvocationConfiguration.Output;
            var (cts, reg) = Progress.InterruptToken();
            using (reg)
            {
                var server = FeatureServer.StartAsync(settings, inputs, Compute.All, cts.Token).GetAwaiter().GetResult();
                try
                {
                    foreach (var s in server.Catalog.Stores)
                        o.WriteLine($"store {s.Id}: {s.Name} ({s.Summary.Architecture}, d_sae {s.DSae}) from {s.StorePath}{(s.Live is null ? $"; no live search or steering: {s.LiveUnavailable}" : "")}");
                    foreach (var m in server.Catalog.Matches) o.WriteLine($"match {m.Id}: {m.Name} ({m.Checkpoints.Count} checkpoints)");
                    o.WriteLine($"SaeSharp feature browser at {server.Url}/ (Ctrl+C to stop)");
                    o.Flush();
                    server.RunUntil(cts.Token).GetAwaiter().GetResult();
                }
                finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            }
            return 0;
        });
        return cmd;
    }
}
