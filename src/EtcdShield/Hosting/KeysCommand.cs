using System.Globalization;
using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Keys.Pkcs11;
using EtcdShield.Relay;
using Grpc.Core;

namespace EtcdShield.Hosting;

/// <summary>
/// <c>etcdshield keys create|rotate|status</c>: manages the KEK family in the HSM with the proxy's own flags.
/// Exit codes: 0 done, 1 the HSM or etcd failed (with a message saying why), 2 bad flags.
/// </summary>
internal static class KeysCommand
{
    public const int Ok = 0;
    public const int ProviderError = 1;
    public const int BadFlags = 2;

    private static readonly TimeSpan EtcdCallTimeout = TimeSpan.FromSeconds(30);

    /// <param name="args">The arguments after "keys".</param>
    /// <param name="environment">ETCDSHIELD_* variables to read flags from (none when null).</param>
    public static Task<int> RunAsync(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, ILoggerFactory? loggerFactory = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ParsedCommand parsed = ShieldCommands.CommandLine.Parse([ShieldCommands.Keys, .. args], environment ?? new Dictionary<string, string>());
        return RunAsync(parsed, stdout, stderr, loggerFactory);
    }

    /// <param name="parsed">A parse of "keys ..." by <see cref="ShieldCommands.CommandLine"/>.</param>
    public static async Task<int> RunAsync(ParsedCommand parsed, TextWriter stdout, TextWriter stderr, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(parsed);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        if (parsed.HelpRequested)
        {
            ShieldCommandLine.WriteHelp(parsed, stdout);
            return Ok;
        }

        if (parsed.Path == ShieldCommands.Keys)
        {
            // "keys" alone, or with a word that is not one of its commands.
            if (parsed.UnknownCommands.Count == 0)
            {
                await stderr.WriteAsync(ShieldCommands.CommandLine.Help(ShieldCommands.Keys)).ConfigureAwait(false);
            }

            foreach (string unknown in parsed.UnknownCommands)
            {
                await stderr.WriteLineAsync($"etcdshield keys: unknown command '{unknown}' (create, rotate or status; see etcdshield keys --help)").ConfigureAwait(false);
            }

            return BadFlags;
        }

        string subcommand = parsed.Path[(ShieldCommands.Keys.Length + 1)..];
        KeysCommandOptions options;
        try
        {
            options = KeysCommandLine.ToOptions(subcommand, parsed.Flags);
        }
        catch (ConfigurationException e)
        {
            foreach (string error in e.Errors)
            {
                await stderr.WriteLineAsync($"etcdshield keys {subcommand}: {error}").ConfigureAwait(false);
            }

            return BadFlags;
        }

        using ILoggerFactory? ownLogging = loggerFactory is null ? StandardErrorLogging() : null;
        ILogger logger = (loggerFactory ?? ownLogging!).CreateLogger("EtcdShield.Keys.Pkcs11");
        try
        {
            using Pkcs11KeyStore store = Pkcs11KeyStore.Open(options.Pkcs11, readWrite: subcommand != "status", logger);
            switch (subcommand)
            {
                case "create":
                case "rotate":
                    Pkcs11KekVersion created = store.CreateVersion(rotate: subcommand == "rotate");
                    await stdout.WriteLineAsync(
                        $"Created key-encryption key \"{created.Label}\" (version {created.Version}, envelope id {created.KekId}) in {options.Pkcs11.TokenDescription}.").ConfigureAwait(false);
                    if (created.Version > 1)
                    {
                        await stdout.WriteLineAsync(
                            $"Running proxies wrap new data keys with it within {options.Pkcs11.RefreshInterval.TotalSeconds:0} s; keep older versions in the token while values still use them (see: etcdshield keys status --upstream-endpoints ...).").ConfigureAwait(false);
                    }

                    break;
                default:
                    await WriteStatusAsync(store, options, stdout, loggerFactory ?? ownLogging!).ConfigureAwait(false);
                    break;
            }

            return Ok;
        }
        catch (Exception e) when (e is KeyProviderUnavailableException or Pkcs11KeyFamilyException or RpcException or ConfigurationException)
        {
            string message = e is RpcException rpc ? $"etcd at --upstream-endpoints answered {rpc.StatusCode}: {rpc.Status.Detail}" : e.Message;
            await stderr.WriteLineAsync($"etcdshield keys {subcommand}: {message}").ConfigureAwait(false);
            return ProviderError;
        }
    }

    private static async Task WriteStatusAsync(Pkcs11KeyStore store, KeysCommandOptions options, TextWriter stdout, ILoggerFactory loggerFactory)
    {
        IReadOnlyList<Pkcs11KekVersion> versions = store.ListVersions();
        await stdout.WriteLineAsync(
            $"KEK family \"{store.Family}\" in {options.Pkcs11.TokenDescription} of PKCS#11 module {options.Pkcs11.ModulePath}:").ConfigureAwait(false);
        if (versions.Count == 0)
        {
            await stdout.WriteLineAsync("  no versions; create the first with: etcdshield keys create").ConfigureAwait(false);
        }
        else
        {
            List<string[]> rows = [["VERSION", "LABEL", "KEK ID", "STATE"]];
            foreach (Pkcs11KekVersion version in versions)
            {
                string state = version.Key.Problem() is { } problem
                    ? $"UNUSABLE: {problem}"
                    : ReferenceEquals(version, versions[^1]) ? "current (wraps new data keys)" : "older (unwraps only)";
                rows.Add([version.Version.ToString(CultureInfo.InvariantCulture), version.Label, version.KekId, state]);
            }

            await WriteTableAsync(stdout, rows).ConfigureAwait(false);
            foreach (string weakness in versions.SelectMany(v => v.Key.Weaknesses()))
            {
                await stdout.WriteLineAsync($"  warning: {weakness}").ConfigureAwait(false);
            }
        }

        if (options.Upstream is null)
        {
            await stdout.WriteLineAsync("Values per KEK: give --upstream-endpoints (and its TLS flags) to count them in etcd.").ConfigureAwait(false);
            return;
        }

        using UpstreamChannel channel = new(options.Upstream, loggerFactory);
        KekUsageScan scan = await KekUsageScan.RunAsync(channel.Invoker, EtcdCallTimeout, CancellationToken.None).ConfigureAwait(false);
        await stdout.WriteLineAsync(
            $"Values in etcd at revision {scan.Revision} ({scan.Keys} keys):").ConfigureAwait(false);
        HashSet<string> inToken = versions.Select(v => v.KekId).ToHashSet(StringComparer.Ordinal);
        List<string[]> usage = [["KEK ID", "VALUES", "DATA KEYS", "NOTE"]];
        foreach (KekUsage kek in scan.ByKek.OrderBy(k => k.KekId, StringComparer.Ordinal))
        {
            string note = inToken.Contains(kek.KekId) ? ""
                : kek.KekId.StartsWith(Pkcs11KeyLabel.IdPrefix, StringComparison.Ordinal) ? "not in this family (another label?)"
                : "not a PKCS#11 KEK";
            usage.Add([kek.KekId, Count(kek.Values), kek.DataKeys.ToString(CultureInfo.InvariantCulture), note]);
        }

        foreach (Pkcs11KekVersion version in versions.Where(v => scan.ByKek.All(k => k.KekId != v.KekId)))
        {
            usage.Add([version.KekId, "0", "0", ReferenceEquals(version, versions[^1]) ? "" : "no values: can be deleted from the token"]);
        }

        usage.Add(["(not encrypted)", Count(scan.Plaintext), "", ""]);
        if (scan.Malformed > 0)
        {
            usage.Add(["(malformed envelope)", Count(scan.Malformed), "", ""]);
        }

        await WriteTableAsync(stdout, usage).ConfigureAwait(false);

        static string Count(long n) => n.ToString(CultureInfo.InvariantCulture);
    }

    private static async Task WriteTableAsync(TextWriter stdout, List<string[]> rows)
    {
        int[] widths = [.. Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length))];
        foreach (string[] row in rows)
        {
            string line = "  " + string.Join("  ", row.Select((cell, c) => cell.PadRight(widths[c])));
            await stdout.WriteLineAsync(line.TrimEnd()).ConfigureAwait(false);
        }
    }

    private static ILoggerFactory StandardErrorLogging() => LoggerFactory.Create(logging => logging
        .SetMinimumLevel(LogLevel.Warning)
        .AddSimpleConsole(o => o.SingleLine = true)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
}
