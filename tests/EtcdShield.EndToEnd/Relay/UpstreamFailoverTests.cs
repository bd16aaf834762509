using System.Globalization;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// EtcdShield in front of a real three-member cluster: it keeps serving, watches included, when the member it
/// relays to dies or when its first endpoint was never there, and member lists show clients the proxy's
/// advertised URLs only, never the members' own. With a cluster at hand, it also shows clientv3's
/// <c>hasleader</c> metadata reaching etcd, which refuses a watch that requires a leader while it has none.
/// </summary>
public sealed class UpstreamFailoverTests(UpstreamFailoverTests.Fixture fixture, ITestOutputHelper output) : IClassFixture<UpstreamFailoverTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        private EtcdCluster? cluster;

        public TestPki Pki { get; } = new();

        internal EtcdCluster Cluster => cluster ?? throw new InvalidOperationException("Not started.");

        public async Task InitializeAsync() => cluster = await EtcdCluster.StartAsync(3);

        public async Task DisposeAsync()
        {
            if (cluster is not null)
            {
                await cluster.DisposeAsync();
            }

            Pki.Dispose();
        }
    }

    [Fact]
    public async Task Writes_and_reads_continue_through_the_proxy_when_the_member_it_uses_is_killed()
    {
        var cluster = fixture.Cluster;
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, cluster.Endpoints, output: output);
        var etcdctl = shield.Etcdctl(fixture.Pki);
        (await etcdctl.RunAsync("put", "failover/1", "before")).EnsureSuccess();

        // The proxy takes the first reachable endpoint, the first member.
        var victim = cluster.Members[0];
        await victim.StopAsync();
        try
        {
            await cluster.WaitForLeaderAsync();

            var put = await etcdctl.RunAsync("put", "failover/2", "after");
            var get = await etcdctl.RunAsync("get", "failover/", "--prefix", "--print-value-only");

            Assert.True(put.Succeeded, put.ToString());
            Assert.Equal(["before", "after"], get.EnsureSuccess().StdOutLines);
        }
        finally
        {
            await victim.StartAgainAsync();
        }
    }

    [Fact]
    public async Task An_etcdctl_watch_through_the_proxy_carries_on_after_the_member_it_used_is_killed()
    {
        var cluster = fixture.Cluster;
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, cluster.Endpoints, output: output);
        var target = EtcdctlTarget.Proxy(shield, fixture.Pki);
        var first = (await target.RunAsync("put", "failover-watch/1", "before", "-w", "json")).EnsureSuccess();
        var revision = System.Text.Json.JsonDocument.Parse(first.StdOut).RootElement.GetProperty("header").GetProperty("revision").GetInt64();

        // From that put's revision, so the watch sees it however long the watch takes to be established.
        await using var watch = target.Start("watch", "failover-watch/", "--prefix", "--rev=" + revision.ToString(CultureInfo.InvariantCulture));
        await watch.WaitForStdOutAsync(line => line == "before", TimeSpan.FromSeconds(15));

        var victim = cluster.Members[0];
        await victim.StopAsync();
        try
        {
            await cluster.WaitForLeaderAsync();
            var put = await target.RunAsync("put", "failover-watch/2", "after");

            // The relayed stream broke with the member; etcdctl reconnects through the proxy, which now relays to
            // a surviving member, and resumes from the revision it had seen.
            await watch.WaitForStdOutAsync(line => line == "after", TimeSpan.FromSeconds(20));
            Assert.True(put.Succeeded, put.ToString());
            Assert.Equal(["PUT", "failover-watch/1", "before", "PUT", "failover-watch/2", "after"], watch.StdOut.Split('\n'));
        }
        finally
        {
            await victim.StartAgainAsync();
        }
    }

    [Fact]
    public async Task The_hasleader_metadata_reaches_etcd_which_then_refuses_a_watch_while_it_has_no_leader()
    {
        var cluster = fixture.Cluster;
        var survivor = cluster.Members[0];
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, survivor.ClientUrl, output: output);
        using var channel = GrpcClients.Channel(shield.ClientUrl, fixture.Pki);
        var others = cluster.Members.Skip(1).ToArray();
        foreach (var member in others)
        {
            await member.StopAsync();
        }

        try
        {
            // Alone, the survivor loses its leader once an election times out; its status says when.
            await Eventually.HoldsAsync(
                async () => (await new Etcdctl(survivor.ClientUrl).RunAsync("endpoint", "status", "-w", "json")).StdOut,
                status => status.Contains("\"raftTerm\"", StringComparison.Ordinal) && !status.Contains("\"leader\"", StringComparison.Ordinal),
                TimeSpan.FromSeconds(15));

            await using var requiringLeader = new WatchSession(channel, new Grpc.Core.Metadata { { "hasleader", "true" } });
            await requiringLeader.CreateAsync(new WatchCreateRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("leaderless/k") });
            var refused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => requiringLeader.NextAsync(_ => false));
            await using var notRequiring = new WatchSession(channel);
            await notRequiring.CreateAsync(new WatchCreateRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("leaderless/k") });
            var created = await notRequiring.NextAsync(r => r.Created);

            Assert.Equal(Grpc.Core.StatusCode.Unavailable, refused.StatusCode);
            Assert.Equal("etcdserver: no leader", refused.Status.Detail);
            Assert.True(created.Created);
        }
        finally
        {
            await Task.WhenAll(others.Select(m => m.StartAgainAsync()));
            await cluster.WaitForLeaderAsync();
        }
    }

    /// <summary>What goes wrong while the sidecars' writers swap: a member crashes, a member freezes, a sidecar crashes.</summary>
    public enum Fault
    {
        MemberKilled,
        MemberPaused,
        SidecarKilled,
    }

    [Theory]
    [InlineData(Fault.MemberKilled)]
    [InlineData(Fault.MemberPaused)]
    [InlineData(Fault.SidecarKilled)]
    public async Task Two_rollback_protected_sidecars_keep_compare_and_swap_exact_through_a_fault(Fault fault)
    {
        var cluster = fixture.Cluster;
        var directory = Directory.CreateTempSubdirectory("etcdshield-chaos-").FullName;
        var kek = ShieldServer.WriteDevelopmentKey(directory);
        var others = string.Join(',', cluster.Members.Skip(1).Select(m => m.ClientUrl).Append(cluster.Members[0].ClientUrl));
        await using var first = await Sidecar.StartAsync(fixture.Pki, cluster.Endpoints, kek);
        await using var second = await Sidecar.StartAsync(fixture.Pki, others, kek);
        using var firstChannel = GrpcClients.Channel(first.ClientUrl, fixture.Pki);
        using var secondChannel = GrpcClients.Channel(second.ClientUrl, fixture.Pki);
        KV.KVClient[] sidecars = [new(firstChannel), new(secondChannel)];
        var key = Google.Protobuf.ByteString.CopyFromUtf8("/registry/secrets/chaos-" + Guid.NewGuid().ToString("N"));
        await sidecars[0].PutAsync(new PutRequest { Key = key, Value = Google.Protobuf.ByteString.CopyFromUtf8("0") });

        // Four writers swap the value kube-apiserver's way through both sidecars, each call with a deadline as
        // kube-apiserver sets one; each swap that succeeded moved the counter by one from what it read, so the final
        // value counts them, whatever failed in between (a call that failed may still have been applied).
        var swapped = 0;
        var unknown = 0;
        using var stop = new CancellationTokenSource();
        async Task WriterAsync(int writer)
        {
            var kv = sidecars[writer % 2];
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var read = (await kv.RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow.AddSeconds(5))).Kvs[0];
                    var next = (int.Parse(read.Value.ToStringUtf8(), CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture);
                    var txn = await kv.TxnAsync(
                        new TxnRequest
                        {
                            Compare = { new Compare { Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = read.ModRevision } },
                            Success = { new RequestOp { RequestPut = new PutRequest { Key = key, Value = Google.Protobuf.ByteString.CopyFromUtf8(next) } } },
                            Failure = { new RequestOp { RequestRange = new RangeRequest { Key = key } } },
                        },
                        deadline: DateTime.UtcNow.AddSeconds(5));
                    if (txn.Succeeded)
                    {
                        Interlocked.Increment(ref swapped);
                    }
                }
                catch (Grpc.Core.RpcException e) when (e.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.Aborted or Grpc.Core.StatusCode.DeadlineExceeded or Grpc.Core.StatusCode.Unknown or Grpc.Core.StatusCode.Internal)
                {
                    // A member or the sidecar died or froze under the call: it may or may not have been applied.
                    Interlocked.Increment(ref unknown);
                }
            }
        }

        var writers = Enumerable.Range(0, 4).Select(WriterAsync).ToArray();
        await Eventually.HoldsAsync(() => Task.FromResult(Volatile.Read(ref swapped)), n => n >= 20, TimeSpan.FromSeconds(30));
        var victim = cluster.Members[0];
        try
        {
            switch (fault)
            {
                case Fault.MemberKilled:
                    await victim.StopAsync();
                    await cluster.WaitForLeaderAsync();
                    break;
                case Fault.MemberPaused:
                    await victim.PauseAsync();
                    break;
                case Fault.SidecarKilled:
                    await first.KillAsync();
                    break;
            }

            // The writers through the sidecar that still reaches a working member go on swapping meanwhile.
            var atFault = Volatile.Read(ref swapped);
            await Eventually.HoldsAsync(() => Task.FromResult(Volatile.Read(ref swapped)), n => n >= atFault + 20, TimeSpan.FromSeconds(60));
            if (fault == Fault.SidecarKilled)
            {
                // Restarted on the same port, it serves the writers that were failing through it.
                await first.StartAgainAsync();
                var atRestart = Volatile.Read(ref swapped);
                await Eventually.HoldsAsync(() => Task.FromResult(Volatile.Read(ref swapped)), n => n >= atRestart + 20, TimeSpan.FromSeconds(60));
            }
        }
        finally
        {
            if (fault == Fault.MemberPaused)
            {
                await victim.ResumeAsync();
            }

            await stop.CancelAsync();
            await Task.WhenAll(writers);
            if (fault == Fault.MemberKilled)
            {
                await victim.StartAgainAsync();
            }

            await cluster.WaitForLeaderAsync();
        }

        // Both sidecars read the same value, it opens at its place, and it counts every acknowledged swap (plus at most
        // the ones whose answer was lost). Calls still held by a frozen member have ended by now (their deadlines).
        var values = new List<int>();
        foreach (var kv in sidecars)
        {
            var read = await Eventually.HoldsAsync(() => ReadAsync(kv, key), v => v is not null, TimeSpan.FromSeconds(30));
            values.Add(read!.Value);
        }

        Directory.Delete(directory, recursive: true);
        Assert.Equal(values[0], values[1]);
        Assert.InRange(values[0], swapped, swapped + unknown);
    }

    [Fact]
    public async Task A_proxy_whose_first_endpoint_is_a_dead_port_still_serves()
    {
        var dead = "http://127.0.0.1:" + FreePort.Allocate().ToString(CultureInfo.InvariantCulture);
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, dead + "," + fixture.Cluster.Endpoints, output: output);
        var etcdctl = shield.Etcdctl(fixture.Pki);

        var put = await etcdctl.RunAsync("put", "dead-first/k", "v");
        var get = await etcdctl.RunAsync("get", "dead-first/k", "--print-value-only");

        Assert.True(put.Succeeded, put.ToString());
        Assert.Equal(["v"], get.EnsureSuccess().StdOutLines);
    }

    [Fact]
    public async Task Member_lists_name_only_the_advertised_urls_as_every_members_client_urls()
    {
        var ports = FreePort.Allocate(2);
        string[] advertised = [$"https://127.0.0.1:{ports[0]}", $"https://localhost:{ports[1]}"];
        await using var shield = await ShieldServer.StartAsync(
            fixture.Pki,
            fixture.Cluster.Endpoints,
            flags: ["--advertise-client-urls", string.Join(',', advertised)],
            output: output);

        using var channel = GrpcClients.Channel(shield.ClientUrl, fixture.Pki);
        var members = await new Cluster.ClusterClient(channel).MemberListAsync(new MemberListRequest());
        var listed = (await shield.Etcdctl(fixture.Pki).RunAsync("member", "list")).EnsureSuccess();

        Assert.Equal(3, members.Members.Count);
        foreach (var member in members.Members)
        {
            Assert.Equal(advertised, member.ClientURLs);
            Assert.Equal(fixture.Cluster.Members.Single(m => m.Name == member.Name).PeerUrl, Assert.Single(member.PeerURLs));
        }

        Assert.Equal(3, listed.StdOutLines.Count);
        Assert.All(listed.StdOutLines, line => Assert.EndsWith(", " + string.Join(",", advertised) + ", false", line, StringComparison.Ordinal));
        foreach (var url in fixture.Cluster.ClientUrls)
        {
            Assert.DoesNotContain(url, listed.StdOut, StringComparison.Ordinal);
            Assert.DoesNotContain(url, members.ToString(), StringComparison.Ordinal);
        }
    }

    /// <summary>The counter through one sidecar, or null while that sidecar's channel is still reconnecting.</summary>
    private static async Task<int?> ReadAsync(KV.KVClient kv, Google.Protobuf.ByteString key)
    {
        try
        {
            var kvs = (await kv.RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow.AddSeconds(5))).Kvs;
            return int.Parse(kvs[0].Value.ToStringUtf8(), CultureInfo.InvariantCulture);
        }
        catch (Grpc.Core.RpcException e) when (e.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded)
        {
            return null;
        }
    }

    /// <summary>
    /// A rollback-protected sidecar as its own process (<c>dotnet EtcdShield.dll</c>), so a test can kill it with
    /// SIGKILL as a crash would and start it again on the same port.
    /// </summary>
    private sealed class Sidecar : IAsyncDisposable
    {
        private readonly IReadOnlyList<string> _arguments;
        private BackgroundProcess? _process;

        private Sidecar(IReadOnlyList<string> arguments, string clientUrl)
        {
            _arguments = arguments;
            ClientUrl = clientUrl;
        }

        public string ClientUrl { get; }

        public static async Task<Sidecar> StartAsync(TestPki pki, string upstreams, string kek)
        {
            var clientUrl = $"https://127.0.0.1:{FreePort.Allocate()}";
            var sidecar = new Sidecar(
                [
                    ExecutableTests.Assembly,
                    "--listen-client-urls", clientUrl,
                    "--cert-file", pki.ServerCert.CertFile,
                    "--key-file", pki.ServerCert.KeyFile,
                    "--trusted-ca-file", pki.CaFile,
                    "--allow-cn", ShieldServer.ClientName,
                    "--upstream-endpoints", upstreams,
                    "--encryption-key-file", kek,
                    "--rollback-protection-prefix", "/registry/secrets/",
                ],
                clientUrl);
            await sidecar.StartAgainAsync();
            return sidecar;
        }

        public async Task StartAgainAsync()
        {
            _process = BackgroundProcess.Start(ExecutableTests.DotnetHost(), _arguments);
            await _process.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        }

        public async Task KillAsync()
        {
            if (_process is not null)
            {
                await _process.KillAsync();
                await _process.DisposeAsync();
                _process = null;
            }
        }

        public ValueTask DisposeAsync() => _process?.DisposeAsync() ?? ValueTask.CompletedTask;
    }
}
