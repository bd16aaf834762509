using System.Collections;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// Where etcdctl connects and with which TLS files: used both for short commands (<see cref="Etcdctl"/>) and
/// for long-running ones (watch, elect) that a test starts in the background and stops itself.
/// </summary>
internal sealed record EtcdctlTarget(string Endpoint, string? CaFile = null, CertificatePaths? Client = null)
{
    public static EtcdctlTarget Proxy(ShieldServer shield, TestPki pki, CertificatePaths? client = null) =>
        new(shield.ClientUrl, pki.CaFile, client ?? ShieldServer.DefaultClient(pki));

    public Etcdctl Etcdctl(TimeSpan? commandTimeout = null) => new(Endpoint, CaFile, Client) { CommandTimeout = commandTimeout };

    public Task<CommandResult> RunAsync(params string[] arguments) => Etcdctl().RunAsync(arguments);

    /// <summary>Starts etcdctl with the same global flags and environment as <see cref="Etcdctl"/> uses, without waiting for it.</summary>
    public BackgroundProcess Start(params string[] arguments)
    {
        List<string> args = ["--endpoints=" + Endpoint];
        if (CaFile is not null)
        {
            args.Add("--cacert=" + CaFile);
        }

        if (Client is not null)
        {
            args.Add("--cert=" + Client.CertFile);
            args.Add("--key=" + Client.KeyFile);
        }

        args.AddRange(arguments);
        return BackgroundProcess.Start(Infrastructure.Etcdctl.ExecutablePath, args, Environment());
    }

    private static Dictionary<string, string?> Environment()
    {
        // As Etcdctl does: the developer's ETCDCTL_* variables must not change what a test runs.
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry variable in System.Environment.GetEnvironmentVariables())
        {
            if (variable.Key is string name && name.StartsWith("ETCDCTL_", StringComparison.Ordinal))
            {
                environment[name] = null;
            }
        }

        environment["ETCDCTL_API"] = "3";
        return environment;
    }
}
