using EtcdShield.Checks;
using EtcdShield.Configuration;
using EtcdShield.Hosting;
using EtcdShield.Migration;

// One parser for every command (ShieldCommands); each command's own code runs what was asked for.
var parsed = ShieldCommands.CommandLine.Parse(args, ShieldCommands.ProcessEnvironment());
if (parsed.HelpRequested)
{
    return ShieldCommandLine.WriteHelp(parsed, Console.Out);
}

if (parsed.VersionRequested)
{
    await Console.Out.WriteAsync(VersionText.Describe()).ConfigureAwait(false);
    return 0;
}

return parsed.Path switch
{
    ShieldCommands.Serve => await ServeCommand.RunAsync(parsed.Flags).ConfigureAwait(false),
    ShieldCommands.Check => await CheckAsync(parsed.Flags).ConfigureAwait(false),
    ShieldCommands.Migrate => await MigrateCommand.RunAsync(parsed.Flags).ConfigureAwait(false),
    _ => await KeysCommand.RunAsync(parsed, Console.Out, Console.Error).ConfigureAwait(false),
};

// "etcdshield check": options that do not validate are failed checks like any other, one FAIL line each.
static async Task<int> CheckAsync(FlagValues flags)
{
    ShieldOptions options;
    try
    {
        options = ServeCommandLine.ToOptions(flags);
    }
    catch (ConfigurationException e)
    {
        foreach (var error in e.Errors)
        {
            await Console.Out.WriteLineAsync($"FAIL {error}").ConfigureAwait(false);
        }

        return 1;
    }

    using var cancel = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        cancel.Cancel();
    };
    return await ConfigurationCheck.RunAsync(options, Console.Out, cancel.Token).ConfigureAwait(false);
}
