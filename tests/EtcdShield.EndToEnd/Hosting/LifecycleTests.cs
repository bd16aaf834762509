using System.Collections.Concurrent;
using System.Net.Sockets;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hosting;

/// <summary>
/// The proxy's life as a service manager and a kubelet see it, through the built executable: READY=1 and
/// STOPPING=1 on NOTIFY_SOCKET, /livez and /readyz, and SIGTERM under load (acknowledged writes kept, a call in
/// flight finished, streams ended UNAVAILABLE, exit 0). Each test has a private etcd, since they stop it.
/// </summary>
public sealed class LifecycleTests(TestPki pki) : IClassFixture<TestPki>
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Ready_arrives_once_the_client_port_accepts_and_stopping_on_sigterm_then_it_exits_0()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl);

        var ready = await shield.NextNotificationAsync(StartTimeout);
        var uri = new Uri(shield.ClientUrl);
        using var probe = new TcpClient();
        await probe.ConnectAsync(uri.Host, uri.Port);
        var (livez, alive) = await shield.GetAsync("/livez");
        await shield.TerminateAsync();
        var stopping = await shield.NextNotificationAsync(ExitTimeout);
        var exited = await shield.Process.WaitForExitAsync(ExitTimeout);

        Assert.StartsWith("READY=1\n", ready, StringComparison.Ordinal);
        Assert.Contains($"\nMAINPID={shield.Process.ProcessId}\n", ready, StringComparison.Ordinal);
        Assert.Equal((200, "ok"), (livez, alive));
        Assert.StartsWith("STOPPING=1\n", stopping, StringComparison.Ordinal);
        Assert.False(exited.TimedOut, exited.ToString());
        Assert.Equal(0, exited.ExitCode);
    }

    [Fact]
    public async Task Sigterm_while_it_is_still_starting_exits_0()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var plugin = await TestKmsPlugin.StartAsync();
        // The key ring is loaded from the plugin while the host is built, before the host's own signal handlers exist.
        plugin.HoldStatus();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl, "--kms-plugin-endpoint", plugin.Endpoint);
        try
        {
            await plugin.StatusHeld.Task.WaitAsync(StartTimeout);
            await shield.TerminateAsync();
        }
        finally
        {
            plugin.ReleaseStatus();
        }

        var exited = await shield.Process.WaitForExitAsync(ExitTimeout);

        Assert.False(exited.TimedOut, exited.ToString());
        Assert.Equal(0, exited.ExitCode);
    }

    [Fact]
    public async Task Readyz_is_503_naming_etcd_while_etcd_is_stopped_and_200_again_once_it_continues()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl);
        await shield.NextNotificationAsync(StartTimeout);
        var before = await Eventually.HoldsAsync(() => shield.GetAsync("/readyz"), r => r.Status == 200, StartTimeout);

        await ShieldProcess.SignalAsync(etcd, "STOP");
        (int Status, string Body) stopped, alive;
        try
        {
            stopped = await Eventually.HoldsAsync(() => shield.GetAsync("/readyz"), r => r.Status == 503, ExitTimeout);
            alive = await shield.GetAsync("/livez");
        }
        finally
        {
            await ShieldProcess.SignalAsync(etcd, "CONT");
        }

        var after = await Eventually.HoldsAsync(() => shield.GetAsync("/readyz"), r => r.Status == 200, ExitTimeout);
        var other = await shield.GetAsync("/readyz/etcd");

        Assert.Equal("ok", before.Body);
        Assert.StartsWith("[-]etcd failed: ", stopped.Body, StringComparison.Ordinal);
        Assert.EndsWith("readyz check failed\n", stopped.Body, StringComparison.Ordinal);
        Assert.Equal(200, alive.Status);
        Assert.Equal("ok", after.Body);
        Assert.Equal(404, other.Status);
    }

    [Fact]
    public async Task Readyz_is_503_naming_the_key_provider_while_the_kms_plugin_fails_and_200_again_once_it_answers()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var plugin = await TestKmsPlugin.StartAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl, "--kms-plugin-endpoint", plugin.Endpoint);
        await shield.NextNotificationAsync(StartTimeout);
        var before = await Eventually.HoldsAsync(() => shield.GetAsync("/readyz"), r => r.Status == 200, StartTimeout);

        plugin.Down = true;
        (int Status, string Body) failing;
        try
        {
            failing = await Eventually.HoldsAsync(() => shield.GetAsync("/readyz"), r => r.Status == 503, ExitTimeout);
        }
        finally
        {
            plugin.Down = false;
        }

        var after = await Eventually.HoldsAsync(() => shield.GetAsync("/readyz"), r => r.Status == 200, ExitTimeout);

        Assert.Equal("ok", before.Body);
        Assert.Contains("[-]key_provider failed: key provider unreachable: ", failing.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("[-]etcd", failing.Body, StringComparison.Ordinal);
        Assert.Equal("ok", after.Body);
    }

    [Fact]
    public async Task Sigterm_under_write_load_exits_0_keeps_every_acknowledged_put_and_ends_an_open_watch_unavailable()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl);
        await shield.NextNotificationAsync(StartTimeout);
        using var channel = shield.Channel();
        using var watch = new Watch.WatchClient(channel).Watch();
        await watch.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("load/"), RangeEnd = B("load0") } });
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.True(watch.ResponseStream.Current.Created);
        // The watch goes on (etcd answers a half-closed stream); closing our side keeps .NET's HTTP/2 client from
        // dropping a status it has received but not yet read when the server closes the connection right after.
        await watch.RequestStream.CompleteAsync();

        // Read as clientv3 reads a watch, at once: a client reading nothing leaves its end to the server's close.
        var watchEnding = Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await watch.ResponseStream.MoveNext())
            {
            }
        });
        var acknowledged = new ConcurrentBag<string>();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(() => WriteUntilRefusedAsync(shield, w, acknowledged))).ToList();
        await Eventually.HoldsAsync(() => Task.FromResult(acknowledged.Count), n => n >= 40, StartTimeout);
        await shield.TerminateAsync();
        var refusals = await Task.WhenAll(writers);
        var watchEnded = await watchEnding;
        var exited = await shield.Process.WaitForExitAsync(ExitTimeout);

        using var direct = GrpcChannels.ToEtcd(etcd);
        var stored = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = B("load/"), RangeEnd = B("load0"), KeysOnly = true });
        var storedKeys = stored.Kvs.Select(kv => kv.Key.ToStringUtf8()).ToHashSet(StringComparer.Ordinal);
        Assert.False(exited.TimedOut, exited.ToString());
        Assert.Equal(0, exited.ExitCode);
        Assert.All(acknowledged, key => Assert.Contains(key, storedKeys));
        Assert.All(refusals, status => Assert.True(status.StatusCode is StatusCode.Unavailable or StatusCode.Cancelled, status.ToString()));
        Assert.True(watchEnded.StatusCode == StatusCode.Unavailable, $"{watchEnded.Status}; the proxy wrote: {shield.Process.StdOut}");
    }

    [Fact]
    public async Task A_put_in_flight_when_sigterm_arrives_finishes_within_the_shutdown_timeout()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl, "--shutdown-timeout", "60s");
        await shield.NextNotificationAsync(StartTimeout);
        using var channel = shield.Channel();
        var kv = new KV.KVClient(channel);
        await kv.PutAsync(new PutRequest { Key = B("held/warm-up"), Value = B("v") });

        Task<PutResponse> put;
        await ShieldProcess.SignalAsync(etcd, "STOP");
        try
        {
            put = kv.PutAsync(new PutRequest { Key = B("held/put"), Value = B("v") }).ResponseAsync;
            // etcd is stopped, so the forwarded request waits in its socket: there, the proxy has accepted the call.
            await Eventually.HoldsAsync(() => QueuedTowardsAsync(etcd.ClientPort), queued => queued > 0, ExitTimeout);
            await shield.TerminateAsync();
            await shield.NextNotificationAsync(ExitTimeout);
        }
        finally
        {
            await ShieldProcess.SignalAsync(etcd, "CONT");
        }

        var answered = await put;
        var exited = await shield.Process.WaitForExitAsync(ExitTimeout);
        using var direct = GrpcChannels.ToEtcd(etcd);
        var stored = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = B("held/put"), CountOnly = true });

        Assert.True(answered.Header.Revision > 0);
        Assert.Equal(1, stored.Count);
        Assert.False(exited.TimedOut, exited.ToString());
        Assert.Equal(0, exited.ExitCode);
    }

    [Fact]
    public async Task A_put_still_in_flight_when_the_shutdown_timeout_passes_is_ended_and_the_process_still_exits_0()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl, "--shutdown-timeout", "1s");
        await shield.NextNotificationAsync(StartTimeout);
        using var channel = shield.Channel();
        var kv = new KV.KVClient(channel);
        await kv.PutAsync(new PutRequest { Key = B("stuck/warm-up"), Value = B("v") });

        RpcException ended;
        CommandResult exited;
        await ShieldProcess.SignalAsync(etcd, "STOP");
        try
        {
            var put = kv.PutAsync(new PutRequest { Key = B("stuck/put"), Value = B("v") }).ResponseAsync;
            await Eventually.HoldsAsync(() => QueuedTowardsAsync(etcd.ClientPort), queued => queued > 0, ExitTimeout);
            await shield.TerminateAsync();
            exited = await shield.Process.WaitForExitAsync(ExitTimeout);
            ended = await Assert.ThrowsAsync<RpcException>(() => put);
        }
        finally
        {
            await ShieldProcess.SignalAsync(etcd, "CONT");
        }

        Assert.False(exited.TimedOut, exited.ToString());
        Assert.Equal(0, exited.ExitCode);
        Assert.True(ended.StatusCode is StatusCode.Unavailable or StatusCode.Cancelled, ended.Status.ToString());
    }

    /// <summary>Puts distinct keys until the proxy refuses one; returns the status of that refusal.</summary>
    private static async Task<Status> WriteUntilRefusedAsync(ShieldProcess shield, int writer, ConcurrentBag<string> acknowledged)
    {
        using var channel = shield.Channel();
        var kv = new KV.KVClient(channel);
        for (var i = 0; ; i++)
        {
            var key = $"load/{writer}/{i}";
            try
            {
                await kv.PutAsync(new PutRequest { Key = B(key), Value = B("value " + key) }, deadline: DateTime.UtcNow.AddSeconds(30));
                acknowledged.Add(key);
            }
            catch (RpcException e)
            {
                return e.Status;
            }
        }
    }

    /// <summary>Bytes waiting unread in the receive queues of etcd's side of its client connections.</summary>
    private static async Task<long> QueuedTowardsAsync(int etcdPort)
    {
        var sockets = await ExternalCommand.RunAsync("/usr/bin/ss", ["-tnH", "state", "established", $"( sport = :{etcdPort} )"]);
        return sockets.EnsureSuccess().StdOutLines
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Sum(fields => long.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);
}
