using System.Collections;
using System.Globalization;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>Runs the real etcdctl (v3 API) against given endpoints, optionally over TLS with a client certificate.</summary>
internal sealed class Etcdctl
{
    public const string ExecutablePath = "/usr/bin/etcdctl";

    private readonly string? caFile;
    private readonly CertificatePaths? clientCertificate;

    /// <param name="endpoints">One URL or a comma-separated list (an etcd's ClientUrl, a cluster's Endpoints, or the proxy's URL).</param>
    /// <param name="caFile">Trust for https endpoints; etcdctl otherwise falls back to the system roots and fails.</param>
    /// <param name="clientCertificate">Presented to servers that require client certificates.</param>
    public Etcdctl(string endpoints, string? caFile = null, CertificatePaths? clientCertificate = null)
    {
        Endpoints = endpoints;
        this.caFile = caFile;
        this.clientCertificate = clientCertificate;
    }

    public string Endpoints { get; }

    /// <summary>etcdctl's limit on establishing a connection (--dial-timeout, default 2 s).</summary>
    public TimeSpan? DialTimeout { get; init; }

    /// <summary>etcdctl's limit on one request (--command-timeout, default 5 s).</summary>
    /// <remarks>A refused TLS handshake does not fail fast in etcdctl 3.4: the gRPC balancer keeps
    /// retrying and the request ends only at this limit, so tests expecting refusal shorten it.</remarks>
    public TimeSpan? CommandTimeout { get; init; }

    public Task<CommandResult> RunAsync(params string[] arguments) => RunAsync(arguments, standardInput: null);

    /// <param name="arguments">The subcommand and its arguments, e.g. <c>["get", "a"]</c>. A value starting with
    /// '-' must follow a <c>--</c> argument or etcdctl takes it for a flag.</param>
    /// <param name="standardInput">For subcommands that read stdin, such as <c>txn</c>.</param>
    /// <param name="environment">Extra variables; they override the ones set here (a null value removes one).</param>
    public Task<CommandResult> RunAsync(
        IEnumerable<string> arguments,
        string? standardInput,
        IReadOnlyDictionary<string, string?>? environment = null,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        // Global flags go first; etcdctl also accepts them after the subcommand, but this keeps
        // a trailing "--" in the caller's arguments from swallowing them.
        List<string> args = ["--endpoints=" + Endpoints];
        if (caFile is not null)
        {
            args.Add("--cacert=" + caFile);
        }

        if (clientCertificate is not null)
        {
            args.Add("--cert=" + clientCertificate.CertFile);
            args.Add("--key=" + clientCertificate.KeyFile);
        }

        if (DialTimeout is { } dial)
        {
            args.Add("--dial-timeout=" + GoDuration(dial));
        }

        if (CommandTimeout is { } command)
        {
            args.Add("--command-timeout=" + GoDuration(command));
        }

        args.AddRange(arguments);
        return ExternalCommand.RunAsync(ExecutablePath, args, standardInput, BuildEnvironment(environment), timeout, cancellationToken);
    }

    private static string GoDuration(TimeSpan duration) =>
        string.Create(CultureInfo.InvariantCulture, $"{(long)Math.Ceiling(duration.TotalMilliseconds)}ms");

    private static Dictionary<string, string?> BuildEnvironment(IReadOnlyDictionary<string, string?>? extra)
    {
        // etcdctl reads ETCDCTL_* variables as flags (and rejects ones that duplicate a flag), so the
        // caller's shell must not change what a test runs.
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables())
        {
            if (variable.Key is string name && name.StartsWith("ETCDCTL_", StringComparison.Ordinal))
            {
                environment[name] = null;
            }
        }

        environment["ETCDCTL_API"] = "3";
        foreach (var (name, value) in extra ?? new Dictionary<string, string?>())
        {
            environment[name] = value;
        }

        return environment;
    }
}
