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
    /// <param name="flags">migrate's flags (<see cref="ShieldCommands.MigrateFlags"/>) from every source.</param>
    public static async Task<int> RunAsync(FlagValues flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        ServiceProvider services;
        // Read before the shared flags are checked, so that their problems are reported with the rest.
        var batchSize = flags.Int("batch-size", 500, 1, 10_000);
        var dryRun = flags.Switch("dry-run");
        try
        {
            // Without --no-encryption among migrate's flags, the options always name exactly one key provider.
            var options = ServeCommandLine.UpstreamAndKeys(flags);
            services = BuildServices(options, EncryptionOptionsFor(options), flags.Single("log-level") ?? "Warning");
        }
        catch (ConfigurationException e)
        {
            foreach (var error in e.Errors)
            {
                await Console.Error.WriteLineAsync($"etcdshield migrate: {error}").ConfigureAwait(false);
            }

            return 2;
        }

        await using var disposeServices = services;
        try
        {
            var migrator = services.GetRequiredService<StorageMigrator>();
            var prefix = ByteString.CopyFromUtf8(flags.Single("prefix") ?? "");
            var report = await migrator.RunAsync(
                prefix,
                dryRun,
                batchSize,
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
            // migrate reads the unbound values it re-seals under a protected prefix; it writes them bound.
            return EncryptionOptions.FromUtf8(options.EncryptPrefixes, options.LegacyPlaintextPrefixes, options.MaxRequestBytes, options.RollbackProtectionPrefixes).ReadingUnbound();
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException(e.Message, e);
        }
    }
}
