using System.Globalization;
using System.Text;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// An encrypting proxy, with etcd's default --max-txn-ops, whose policy gives the identity <c>reader</c> read access
/// to the keys a subclass names and nothing else: the narrow-grant attacker of the request-cost attacks. Also reads
/// etcd's own Prometheus counters, to see what really reached etcd.
/// </summary>
public abstract class ReaderProxy : ShieldedEtcd
{
    public const int MaxTxnOps = 128;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly string _directory = Directory.CreateTempSubdirectory("etcdshield-reader-").FullName;
    private GrpcChannel? _reader;

    internal KV.KVClient ReaderKv => new(_reader ?? throw new InvalidOperationException("The fixture has not started."));

    protected override IReadOnlyList<string> ShieldFlags => ["--policy-file", WritePolicy(), "--max-txn-ops", "128"];

    /// <summary>Its tests count what etcd sent in all, which other tests' traffic would add to.</summary>
    protected override bool OwnsEtcd => true;

    /// <summary>The reader's grants, as policy YAML entries: <c>key: /k</c> or <c>prefix: /p/</c>.</summary>
    protected abstract IEnumerable<string> ReadGrants { get; }

    /// <summary>The value of the first line of etcd's /metrics that starts with <paramref name="series"/> and holds every one of <paramref name="labels"/>.</summary>
    internal async Task<double> EtcdMetricAsync(string series, params string[] labels)
    {
        var metrics = await Http.GetStringAsync(new Uri(Etcd.ClientUrl + "/metrics"));
        var line = metrics.Split('\n').First(l => l.StartsWith(series, StringComparison.Ordinal) && labels.All(label => l.Contains(label, StringComparison.Ordinal)));
        return double.Parse(line[(line.LastIndexOf(' ') + 1)..].Trim(), CultureInfo.InvariantCulture);
    }

    protected override Task OnStartedAsync()
    {
        _reader = GrpcChannels.ToProxy(Shield, Pki, Pki.IssueClient("reader", "reader"));
        return Task.CompletedTask;
    }

    protected override ValueTask OnStoppingAsync()
    {
        _reader?.Dispose();
        Directory.Delete(_directory, recursive: true);
        return ValueTask.CompletedTask;
    }

    private string WritePolicy()
    {
        var policy = new StringBuilder();
        policy.AppendLine("identities:");
        policy.AppendLine("  - name: reader");
        policy.AppendLine("    match: { cn: reader }");
        policy.AppendLine("    keys:");
        foreach (var grant in ReadGrants)
        {
            policy.AppendLine(CultureInfo.InvariantCulture, $"      - {{ {grant}, permission: read }}");
        }

        var path = Path.Combine(_directory, "policy.yaml");
        File.WriteAllText(path, policy.ToString());
        return path;
    }
}
