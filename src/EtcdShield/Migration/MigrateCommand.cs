using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Migration;

/// <summary>
/// <c>etcdshield migrate</c>: re-encrypt every stored value under the current keys, online, with the same
/// upstream and key provider flags as the proxy. Exit code 0 when every value is now current, 1 when some
/// could not be migrated (listed), 2 for bad flags.
/// </summary>
internal static class MigrateCommand
{
    private static readonly string[] SharedFlags =
    [
        "upstream-endpoints", "upstream-cert-file", "upstream-key-file", "upstream-trusted-ca-file",
        "encryption-key-file", "retired-encryption-key-file", "pkcs11-module", "pkcs11-token-label", "pkcs11-slot", "pkcs11-pin-file", "pkcs11-key-label",
        "pkcs11-retired-key-label", "kms-plugin-endpoint", "encrypt-prefix", "legacy-plaintext-prefix", "max-request-bytes", "log-level",
    ];

    public static readonly IReadOnlyList<Flag> Flags =
    [
        .. ServeCommandLine.Flags.Where(f => SharedFlags.Contains(f.Name)),
        Flag.Single("prefix", "PREFIX", "Only migrate keys under this prefix (default: every key)."),
        Flag.Switch("dry-run", "Report what would change; write nothing."),
        Flag.Single("batch-size", "N", "Keys read per range request (default 500)."),
        Flag.Switch("help", "Show this help."),
    ];

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        ParsedFlags flags;
        ServiceProvider services;
        try
        {
            flags = ParsedFlags.Parse(args, Flags);
            if (flags.Switch("help"))
            {
                Console.Out.Write(Help());
                return 0;
            }

            // Without --no-encryption among migrate's flags, the options always name exactly one key provider.
            var options = ServeCommandLine.UpstreamAndKeys(flags);
            services = BuildServices(options, EncryptionOptionsFor(options), flags.Single("log-level") ?? "Warning");
        }
        catch (ConfigurationException e)
        {
            await Console.Error.WriteLineAsync($"etcdshield migrate: {e.Message}").ConfigureAwait(false);
            return 2;
        }

        await using var disposeServices = services;
        try
        {
            var migrator = services.GetRequiredService<StorageMigrator>();
            var prefix = ByteString.CopyFromUtf8(flags.Single("prefix") ?? "");
            var report = await migrator.RunAsync(
                prefix,
                flags.Switch("dry-run"),
                flags.Int("batch-size", 500, 1, 10_000),
                new ProgressBar(Console.Error).Report,
                CancellationToken.None).ConfigureAwait(false);
            Console.Out.WriteLine(report.ToString());
            return report.Complete ? 0 : 1;
        }
        catch (ConfigurationException e)
        {
            await Console.Error.WriteLineAsync($"etcdshield migrate: {e.Message}").ConfigureAwait(false);
            return 2;
        }
        catch (Grpc.Core.RpcException e)
        {
            await Console.Error.WriteLineAsync($"etcdshield migrate: {e.StatusCode}: {e.Status.Detail}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>
    /// The pieces of the proxy a migration needs. Unencrypted values are encrypted only inside the
    /// --legacy-plaintext-prefix windows given to migrate itself: anywhere else they may have been planted by
    /// whoever can write to etcd, and sealing them would make the proxy serve them as genuine.
    /// </summary>
    internal static ServiceProvider BuildServices(ShieldOptions options, EncryptionOptions encryption, string logLevel)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging => logging
            .SetMinimumLevel(Enum.TryParse<LogLevel>(logLevel, ignoreCase: true, out var level) ? level : LogLevel.Warning)
            .AddSimpleConsole(o => o.SingleLine = true));
        services.AddMetrics();
        services.AddSingleton(options);
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<UpstreamChannel>();
        services.AddSingleton<EncryptionMetrics>();
        services.AddSingleton<KeyMetrics>();
        KeyProviders.AddKeyRing(services, options, followRotation: false);
        services.AddSingleton(DataKeyOptions.Default);
        services.AddSingleton<DataKeyManager>();
        services.AddSingleton<IDataKeyProvider>(sp => sp.GetRequiredService<DataKeyManager>());
        services.AddSingleton(encryption);
        services.AddSingleton<IValueProtector, ValueProtector>();
        services.AddSingleton(sp => new StorageMigrator(
            new KV.KVClient(sp.GetRequiredService<UpstreamChannel>().Invoker),
            sp.GetRequiredService<IValueProtector>(),
            encryption,
            () => sp.GetRequiredService<DataKeyManager>().KeyRing.Current.Id,
            sp.GetRequiredService<ILogger<StorageMigrator>>()));
        return services.BuildServiceProvider();
    }

    private static EncryptionOptions EncryptionOptionsFor(ShieldOptions options)
    {
        try
        {
            return EncryptionOptions.FromUtf8(options.EncryptPrefixes, options.LegacyPlaintextPrefixes, options.MaxRequestBytes);
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException(e.Message, e);
        }
    }

    private static string Help()
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine("Usage: EtcdShield migrate [flags]");
        text.AppendLine();
        text.AppendLine("Re-encrypts every value in etcd under the current key-encryption key, online: each rewrite is guarded");
        text.AppendLine("by the key's mod_revision, so newer writes are never overwritten. Values already current are checked and");
        text.AppendLine("skipped, so an interrupted run is resumed by running it again. Plaintext is encrypted only under the");
        text.AppendLine("--legacy-plaintext-prefix windows given here; elsewhere it is refused, listed, and the exit code is 1.");
        text.AppendLine();
        foreach (var flag in Flags)
        {
            text.AppendLine(flag.Arity == FlagArity.Switch ? $"  --{flag.Name}" : $"  --{flag.Name} {flag.ValueName}");
            text.Append("      ").AppendLine(flag.Help);
        }

        return text.ToString();
    }
}
