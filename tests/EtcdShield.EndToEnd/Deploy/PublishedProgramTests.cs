using System.Text;
using System.Text.Json;
using EtcdShield.EndToEnd.Gateway;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Otlp;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// deploy/publish.sh's program, compiled with Native AOT as it is deployed, through the paths that Native AOT could
/// break without a build warning: the PKCS#11 binding (keys create, check, serve), the gRPC relay and watch, the
/// JSON gateway and its error body, /health's JSON, JSON log lines, Prometheus text and OTLP export. The in-process
/// tests cover the rest of the behaviour on the JIT build.
/// </summary>
public sealed class PublishedProgramTests(TestPki pki) : IClassFixture<TestPki>
{
    [Fact]
    public async Task The_native_program_seals_under_an_hsm_key_and_serves_grpc_watch_the_gateway_health_json_logs_metrics_and_traces()
    {
        var program = Path.Combine(await PublishedProgram.DirectoryAsync(), "EtcdShield");
        var etcd = await SharedEtcd.GetAsync();
        using var token = await SoftHsmToken.CreateAsync();
        await using var receiver = await TestOtlpReceiver.StartAsync();
        string[] pkcs11 = ["--pkcs11-module", SoftHsmToken.ModulePath, "--pkcs11-token-label", token.Label, "--pkcs11-pin-file", token.PinFile, "--pkcs11-key-label", "kek"];
        var ports = FreePort.Allocate(2);
        var clientUrl = $"https://127.0.0.1:{ports[0]}";
        var metricsUrl = $"http://127.0.0.1:{ports[1]}";
        string[] serve =
        [
            "--listen-client-urls", clientUrl,
            "--cert-file", pki.ServerCert.CertFile,
            "--key-file", pki.ServerCert.KeyFile,
            "--trusted-ca-file", pki.CaFile,
            "--allow-cn", ShieldServer.ClientName,
            "--upstream-endpoints", etcd.ClientUrl,
            "--metrics-listen-url", metricsUrl,
            .. pkcs11,
        ];
        var prefix = SharedEtcd.NewPrefix("published");
        var secret = "published-secret-" + Guid.NewGuid().ToString("N");

        var created = await ExternalCommand.RunAsync(program, ["keys", "create", .. pkcs11], environment: token.Environment);
        var check = await ExternalCommand.RunAsync(program, ["check", .. serve], environment: token.Environment);
        await using var shield = BackgroundProcess.Start(
            program,
            [.. serve, "--log-format", "json", "--otlp-endpoint", receiver.GrpcEndpoint, "--trace-sampling-ratio", "1"],
            token.Environment);
        await shield.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        var target = new EtcdctlTarget(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki));
        await using var watch = target.Start("watch", prefix + "grpc", "--rev", "1");
        var put = await target.RunAsync("put", prefix + "grpc", secret);
        var get = await target.RunAsync("get", prefix + "grpc", "--print-value-only");
        var stored = await new Etcdctl(etcd.ClientUrl).RunAsync("get", prefix + "grpc", "--print-value-only");
        await watch.WaitForStdOutAsync(line => line == secret, TimeSpan.FromSeconds(30));

        using var gateway = new GatewayHttp(clientUrl, pki);
        var gatewayKey = Base64(prefix + "gateway");
        var gatewayPut = await gateway.PostAsync("/v3/kv/put", $$"""{"key":"{{gatewayKey}}","value":"{{Base64(secret)}}"}""");
        var gatewayRange = await gateway.PostAsync("/v3/kv/range", $$"""{"key":"{{gatewayKey}}"}""");
        var gatewayError = await gateway.PostAsync("/v3/kv/range", "{not json");
        using var http = new HttpClient();
        using var health = JsonDocument.Parse(await http.GetStringAsync(new Uri(metricsUrl + "/health")));
        var metrics = await http.GetStringAsync(new Uri(metricsUrl + "/metrics"));
        var spans = await Eventually.HoldsAsync(
            () => Task.FromResult(receiver.Spans),
            s => s.Any(IsPutRequest) && s.Any(u => s.Any(r => IsPutRequest(r) && IsUpstreamOf(u, r))),
            TimeSpan.FromSeconds(30));
        var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(20));

        Assert.True(created.Succeeded, created.ToString());
        Assert.True(check.Succeeded, check.ToString());
        Assert.Contains(check.StdOutLines, l => l.StartsWith("ok   pkcs11-wrap: ", StringComparison.Ordinal));
        Assert.True(put.Succeeded, put.ToString());
        Assert.Equal([secret], get.EnsureSuccess().StdOutLines);
        Assert.DoesNotContain(secret, stored.EnsureSuccess().StdOut, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.OK, gatewayPut.Status);
        Assert.Equal(Base64(secret), gatewayRange.Json().GetProperty("kvs")[0].GetProperty("value").GetString());
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, gatewayError.Status);
        Assert.Equal(3, gatewayError.Json().GetProperty("code").GetInt32());
        Assert.False(string.IsNullOrEmpty(gatewayError.Json().GetProperty("message").GetString()));
        Assert.Equal("true", health.RootElement.GetProperty("health").GetString());
        Assert.Equal("ok", health.RootElement.GetProperty("status").GetString());
        Assert.Contains("# TYPE etcdshield_requests_total counter", metrics, StringComparison.Ordinal);
        Assert.Contains(spans, s => IsPutRequest(s) && s.Attribute("etcdshield.identity")?.StringValue == "cn:" + ShieldServer.ClientName);
        Assert.Equal(0, stopped.ExitCode);
        var lines = stopped.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        Assert.All(lines, line => Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(line).RootElement.ValueKind));
        Assert.DoesNotContain(secret, stopped.StdOut, StringComparison.Ordinal);
    }

    private static bool IsPutRequest(ReceivedSpan span) =>
        span.Span.Kind == Span.Types.SpanKind.Server && span.Scope == "EtcdShield.Relay" && span.Attribute("rpc.method")?.StringValue == "Put";

    private static bool IsUpstreamOf(ReceivedSpan upstream, ReceivedSpan request) =>
        upstream.Span.Kind == Span.Types.SpanKind.Client && upstream.ParentSpanId == request.SpanId;

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
}
