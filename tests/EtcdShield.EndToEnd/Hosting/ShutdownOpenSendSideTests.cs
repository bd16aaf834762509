using System.Globalization;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Hosting;

/// <summary>
/// SIGTERM with a watch whose client keeps its send side open, as Go's clientv3 does (its watch stream stays open
/// for new watches): LifecycleTests' watch half-closes first, so it cannot show whether such a client still hears
/// UNAVAILABLE, and a client told "connection closed" or "cancelled" does not know to move to another member.
/// gRPC from Python (C core, like Go a client that does not drop a received status) watches here.
/// </summary>
public sealed class ShutdownOpenSendSideTests(TestPki pki) : IClassFixture<TestPki>
{
    private const string Python = "/usr/bin/python3";

    private const string Script = """
        # A watch that never half-closes. Usage: watch.py HOST PORT CA CERT KEY
        # Prints "created" once the watch is set up, then the status the stream ended with.
        import os
        import sys
        import threading

        import grpc
        from etcd3 import etcdrpc

        host, port, ca, cert, key = sys.argv[1:6]
        with open(ca, "rb") as c, open(key, "rb") as k, open(cert, "rb") as t:
            credentials = grpc.ssl_channel_credentials(c.read(), k.read(), t.read())
        channel = grpc.secure_channel(host + ":" + port, credentials)
        never = threading.Event()


        def requests():
            yield etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(key=b"w/", range_end=b"w0"))
            never.wait()


        responses = etcdrpc.WatchStub(channel).Watch(requests())
        if not next(responses).created:
            sys.exit("not created")
        print("created", flush=True)
        try:
            for _ in responses:
                pass
            print("status OK", flush=True)
        except grpc.RpcError as e:
            print("status " + e.code().name, flush=True)
        os._exit(0)
        """;

    [Fact]
    public async Task A_watch_that_keeps_its_send_side_open_ends_unavailable_on_sigterm()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl);
        await shield.NextNotificationAsync(TimeSpan.FromSeconds(60));
        var client = ShieldServer.DefaultClient(pki);
        var url = new Uri(shield.ClientUrl);
        var script = Path.Combine(pki.Directory, "open_watch.py");
        await File.WriteAllTextAsync(script, Script);
        await using var watcher = BackgroundProcess.Start(
            Python,
            [script, url.Host, url.Port.ToString(CultureInfo.InvariantCulture), pki.CaFile, client.CertFile, client.KeyFile],
            new Dictionary<string, string?> { ["PYTHONDONTWRITEBYTECODE"] = "1", ["PYTHONPATH"] = null, ["PYTHONHOME"] = null });
        await watcher.WaitForStdOutAsync(o => o.Contains("created", StringComparison.Ordinal), TimeSpan.FromSeconds(30));

        await shield.TerminateAsync();
        var ended = await watcher.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var exited = await shield.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Contains("status UNAVAILABLE", ended.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, exited.ExitCode);
    }
}
