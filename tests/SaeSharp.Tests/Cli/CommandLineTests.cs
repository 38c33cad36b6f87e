using System.CommandLine;

namespace SaeSharp.Tests.Cli;

/// <summary>The command line as a whole: every command and option explains itself, and each option has one spelling everywhere.</summary>
public class CommandLineTests
{
    private static IEnumerable<Command> AllCommands(Command c) => new[] { c }.Concat(c.Subcommands.SelectMany(AllCommands));

    private static IEnumerable<(Command Command, Option Option)> AllOptions() =>
        AllCommands(SaeSharp.Cli.Program.BuildRoot()).SelectMany(c => c.Options.Where(o => o is not System.CommandLine.Help.HelpOption and not VersionOption).Select(o => (c, o)));

    [Fact]
    public void EveryCommandAndOptionHasHelpText()
    {
        var missing = AllCommands(SaeSharp.Cli.Program.BuildRoot()).Where(c => string.IsNullOrWhiteSpace(c.Description)).Select(c => $"command {c.Name}")
            .Concat(AllOptions().Where(x => string.IsNullOrWhiteSpace(x.Option.Description)).Select(x => $"{x.Command.Name} {x.Option.Name}"))
            .ToList();
        Assert.True(missing.Count == 0, "no help text: " + string.Join(", ", missing));
    }

    [Fact]
    public void OptionsHaveOneSpellingAcrossCommands()
    {
        var names = AllOptions().Select(x => x.Option.Name).ToHashSet();
        // Earlier spellings of options that now have one name everywhere.
        foreach (var old in new[] { "--hooks", "--bos", "--add-bos", "--batch-prompts", "--context", "--ctx" })
            Assert.DoesNotContain(old, names);
        // --model always names a transformer; a synthetic model has its own option.
        foreach (var (command, option) in AllOptions().Where(x => x.Option.Name == "--model"))
            Assert.DoesNotContain("synth", option.Description!, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("--synthetic-model", names);
    }
}
