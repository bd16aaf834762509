using System.Globalization;
using System.Text.Json;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>Several etcd members on loopback forming one new cluster, for failover tests.</summary>
internal sealed class EtcdCluster : IAsyncDisposable
{
    private readonly EtcdClientTls? clientTls;

    private EtcdCluster(IReadOnlyList<EtcdProcess> members, EtcdClientTls? clientTls)
    {
        Members = members;
        this.clientTls = clientTls;
    }

    public IReadOnlyList<EtcdProcess> Members { get; }

    public IReadOnlyList<string> ClientUrls => Members.Select(m => m.ClientUrl).ToArray();

    /// <summary>All client URLs joined with commas, the form etcdctl's --endpoints takes.</summary>
    public string Endpoints => string.Join(',', ClientUrls);

    public static async Task<EtcdCluster> StartAsync(
        int size = 3,
        EtcdClientTls? clientTls = null,
        IReadOnlyList<string>? extraArguments = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);

        // Peer URLs go into every member's --initial-cluster, so all ports are fixed up front.
        var ports = FreePort.Allocate(size * 2);
        var names = Enumerable.Range(0, size).Select(i => string.Create(CultureInfo.InvariantCulture, $"etcd{i}")).ToArray();
        var initialCluster = string.Join(',', names.Select((name, i) => string.Create(CultureInfo.InvariantCulture, $"{name}=http://127.0.0.1:{ports[size + i]}")));
        var token = "etcdshield-" + Guid.NewGuid().ToString("N");

        var members = new List<EtcdProcess>(size);
        try
        {
            // All members are launched before any is awaited: a member only reports ready once a
            // quorum has elected a leader, so waiting for each in turn would never finish.
            for (var i = 0; i < size; i++)
            {
                members.Add(EtcdProcess.Launch(new EtcdOptions
                {
                    Name = names[i],
                    ClientTls = clientTls,
                    ExtraArguments = extraArguments ?? [],
                    ClientPort = ports[i],
                    PeerPort = ports[size + i],
                    InitialCluster = initialCluster,
                    InitialClusterToken = token,
                }));
            }

            await Task.WhenAll(members.Select(m => m.WaitUntilReadyAsync(cancellationToken)));
            return new EtcdCluster(members, clientTls);
        }
        catch
        {
            await Task.WhenAll(members.Select(m => m.DisposeAsync().AsTask()));
            throw;
        }
    }

    /// <summary>
    /// Waits until every running member reports the same leader, itself a running member.
    /// </summary>
    /// <remarks>
    /// Call this after stopping a member: a write sent before the survivors notice that the leader is
    /// gone is forwarded to the dead leader and dropped, and the client then waits out its whole
    /// command timeout. No log line marks "leader known" when a follower was stopped (nothing is
    /// re-elected), so this polls `etcdctl endpoint status` within a bounded deadline.
    /// </remarks>
    public async Task WaitForLeaderAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        try
        {
            await Eventually.HoldsAsync(
                () => StatusAsync(cancellationToken),
                status => status.Result.Succeeded && HasAgreedLeader(status.Result.StdOut, status.Running),
                limit,
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"The running members did not agree on a leader within {limit.TotalSeconds:0} s. {e.Message}", e);
        }
    }

    /// <summary>`etcdctl endpoint status` of the members running now, and how many they are.</summary>
    private async Task<(CommandResult Result, int Running)> StatusAsync(CancellationToken cancellationToken)
    {
        var running = Members.Where(m => m.IsRunning).ToArray();
        if (running.Length == 0)
        {
            throw new InvalidOperationException("No member is running, so none can lead.");
        }

        // The server certificate carries clientAuth, so it also serves as this check's client certificate.
        var etcdctl = new Etcdctl(
            string.Join(',', running.Select(m => m.ClientUrl)),
            clientTls?.TrustedCaFile,
            clientTls is null ? null : new CertificatePaths(clientTls.CertFile, clientTls.KeyFile));
        var result = await etcdctl.RunAsync(
            ["endpoint", "status", "--write-out=json", "--command-timeout=1s"],
            standardInput: null,
            timeout: TimeSpan.FromSeconds(10),
            cancellationToken: cancellationToken);
        return (result, running.Length);
    }

    private static bool HasAgreedLeader(string statusJson, int runningCount)
    {
        // [{"Endpoint":"...","Status":{"header":{"member_id":N,...},"leader":N,...}}, ...]
        // Ids are full 64-bit values, so they are read as UInt64 straight from the JSON text. Zero
        // fields are omitted, and a missing "leader" is exactly the no-leader case being waited out.
        using var document = JsonDocument.Parse(statusJson);
        var statuses = document.RootElement.EnumerateArray().Select(e => e.GetProperty("Status")).ToArray();
        if (statuses.Length != runningCount)
        {
            return false;
        }

        var memberIds = statuses.Select(s => Id(s.GetProperty("header"), "member_id")).ToHashSet();
        var leaders = statuses.Select(s => Id(s, "leader")).Distinct().ToArray();
        return leaders is [var leader] && leader != 0 && memberIds.Contains(leader);
    }

    private static ulong Id(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.GetUInt64() : 0;

    public async ValueTask DisposeAsync() =>
        await Task.WhenAll(Members.Select(m => m.DisposeAsync().AsTask()));
}
