using System.Text.Json;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// The curl examples of etcd's "Why gRPC gateway" developer guide (v3.4), run with the real curl through the
/// encrypting proxy in front of a fresh etcd, so the revisions come out as the guide shows them: put and range,
/// range with range_end, a watch that sees a put made while it runs, transactions with a create_revision and a
/// version compare, and the authentication examples (a root user, auth enabled, a token passed in the
/// Authorization header). Everything over HTTP/1.1 except one put over HTTP/2.
/// </summary>
public sealed class GatewayCurlExamplesTests(GatewayCurlExamplesTests.Fixture fixture) : IClassFixture<GatewayCurlExamplesTests.Fixture>
{
    private const string Curl = "/usr/bin/curl";

    private static readonly TimeSpan StreamTimeout = TimeSpan.FromSeconds(10);

    /// <summary>A fresh etcd for the guide's revisions; the auth examples get one of their own (auth stays on).</summary>
    public sealed class Fixture : ShieldFixture
    {
        private protected override bool OwnsEtcd => true;
    }

    [Fact]
    public async Task The_guides_key_value_watch_and_txn_examples_answer_as_the_guide_shows()
    {
        var put = await CurlAsync(fixture.Shield.ClientUrl, "/v3/kv/put", """{"key": "Zm9v", "value": "YmFy"}""");
        var range = await CurlAsync(fixture.Shield.ClientUrl, "/v3/kv/range", """{"key": "Zm9v"}""");
        var prefix = await CurlAsync(fixture.Shield.ClientUrl, "/v3/kv/range", """{"key": "Zm9v", "range_end": "Zm9w"}""");

        Assert.Equal(new CurlAnswer("200", """{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"2","raft_term":"<raft_term>"}}"""), put);
        const string Foo = """{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"2","raft_term":"<raft_term>"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}""";
        Assert.Equal(new CurlAnswer("200", Foo), range);
        Assert.Equal(new CurlAnswer("200", Foo), prefix);

        await using (var watch = BackgroundProcess.Start(Curl, [.. Tls(), "-N", "--http1.1", fixture.Shield.ClientUrl + "/v3/watch", "-X", "POST", "-d", """{"create_request": {"key":"Zm9v"} }"""], CurlEnvironment))
        {
            var created = await watch.WaitForStdOutAsync(line => line.Contains("\"created\":true", StringComparison.Ordinal), StreamTimeout);
            Assert.Equal("""{"result":{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"2","raft_term":"<raft_term>"},"created":true}}""", Normalize(created));

            var putDuringWatch = await CurlAsync(fixture.Shield.ClientUrl, "/v3/kv/put", """{"key": "Zm9v", "value": "YmFy"}""", http2: true);
            var changed = await watch.WaitForStdOutAsync(line => line.Contains("\"events\"", StringComparison.Ordinal), StreamTimeout);

            Assert.Equal(new CurlAnswer("200", """{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"3","raft_term":"<raft_term>"}}"""), putDuringWatch);
            Assert.Equal(
                """{"result":{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"3","raft_term":"<raft_term>"},"events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmFy"}}]}}""",
                Normalize(changed));
        }

        var createTxn = await CurlAsync(fixture.Shield.ClientUrl, "/v3/kv/txn", """{"compare":[{"target":"CREATE","key":"Zm9v","createRevision":"2"}],"success":[{"requestPut":{"key":"Zm9v","value":"YmFy"}}]}""");
        var putBaz = await CurlAsync(fixture.Shield.ClientUrl, "/v3/kv/put", """{"key": "Zm9v", "value": "YmF6"}""");
        var versionTxn = await CurlAsync(fixture.Shield.ClientUrl, "/v3/kv/txn", """{"compare":[{"version":"4","result":"EQUAL","target":"VERSION","key":"Zm9v"}],"success":[{"requestRange":{"key":"Zm9v"}}]}""");

        Assert.Equal(new CurlAnswer("200", """{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"4","raft_term":"<raft_term>"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"4"}}}]}"""), createTxn);
        Assert.Equal("200", putBaz.Status);
        Assert.Equal(
            new CurlAnswer("200", """{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"5","raft_term":"<raft_term>"},"succeeded":true,"responses":[{"response_range":{"header":{"revision":"5"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"5","version":"4","value":"YmF6"}],"count":"1"}}]}"""),
            versionTxn);
        using var direct = GrpcChannels.ToEtcd(fixture.Etcd);
        var stored = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("foo") });
        StoredValue.AssertSealed(Assert.Single(stored.Kvs).Value, "baz");
    }

    [Fact]
    public async Task The_guides_auth_examples_work_and_the_token_in_the_authorization_header_reaches_etcd()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, etcd.ClientUrl);

        Assert.Equal("200", (await CurlAsync(shield.ClientUrl, "/v3/auth/user/add", """{"name": "root", "password": "pass"}""")).Status);
        Assert.Equal("200", (await CurlAsync(shield.ClientUrl, "/v3/auth/role/add", """{"name": "root"}""")).Status);
        Assert.Equal("200", (await CurlAsync(shield.ClientUrl, "/v3/auth/user/grant", """{"user": "root", "role": "root"}""")).Status);
        Assert.Equal("200", (await CurlAsync(shield.ClientUrl, "/v3/auth/enable", "{}")).Status);
        var authenticated = await CurlAsync(shield.ClientUrl, "/v3/auth/authenticate", """{"name": "root", "password": "pass"}""");
        Assert.Equal("200", authenticated.Status);
        using var authentication = JsonDocument.Parse(authenticated.Body);
        var token = authentication.RootElement.GetProperty("token").GetString()!;

        var withToken = await CurlAsync(shield.ClientUrl, "/v3/kv/put", """{"key": "Zm9v", "value": "YmFy"}""", headers: ["Authorization: " + token]);
        var withoutToken = await CurlAsync(shield.ClientUrl, "/v3/kv/put", """{"key": "Zm9v", "value": "YmF6"}""");
        var withBadToken = await CurlAsync(shield.ClientUrl, "/v3/kv/put", """{"key": "Zm9v", "value": "YmF6"}""", headers: ["Authorization: " + token + "x"]);

        Assert.Equal(new CurlAnswer("200", """{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"2","raft_term":"<raft_term>"}}"""), withToken);
        Assert.Equal(new CurlAnswer("400", """{"error":"etcdserver: user name is empty","code":3,"message":"etcdserver: user name is empty"}"""), withoutToken);
        Assert.Equal(new CurlAnswer("401", """{"error":"etcdserver: invalid auth token","code":16,"message":"etcdserver: invalid auth token"}"""), withBadToken);
        var read = await CurlAsync(shield.ClientUrl, "/v3/kv/range", """{"key": "Zm9v"}""", headers: ["Authorization: " + token]);
        Assert.Contains("\"value\":\"YmFy\"", read.Body, StringComparison.Ordinal);

        // grpc-gateway's other way in: a Grpc-Metadata-Token header becomes the "token" metadata etcd reads first.
        var withMetadata = await CurlAsync(shield.ClientUrl, "/v3/kv/put", """{"key": "Zm9v", "value": "YmF6"}""", http2: true, headers: ["Grpc-Metadata-Token: " + token]);
        Assert.Equal(new CurlAnswer("200", """{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":"3","raft_term":"<raft_term>"}}"""), withMetadata);
    }

    private static readonly Dictionary<string, string?> CurlEnvironment = new() { ["CURL_CA_BUNDLE"] = null, ["SSL_CERT_FILE"] = null };

    private string[] Tls()
    {
        var client = ShieldServer.DefaultClient(fixture.Pki);
        return ["--silent", "--show-error", "--cacert", fixture.Pki.CaFile, "--cert", client.CertFile, "--key", client.KeyFile];
    }

    /// <summary>curl as the guide runs it (<c>-X POST -d</c>), with the test's certificates; the answer's status and normalised body.</summary>
    private async Task<CurlAnswer> CurlAsync(string baseUrl, string path, string body, bool http2 = false, IEnumerable<string>? headers = null)
    {
        List<string> args = [.. Tls(), http2 ? "--http2" : "--http1.1", "-L", baseUrl + path, "-X", "POST", "-d", body, "--write-out", "\n%{http_code} %{http_version}"];
        foreach (var header in headers ?? [])
        {
            args.AddRange(["-H", header]);
        }

        var run = (await ExternalCommand.RunAsync(Curl, args, environment: CurlEnvironment)).EnsureSuccess();
        var lines = run.StdOut.Split('\n');
        var statusAndVersion = lines[^1].Split(' ');
        Assert.Equal(http2 ? "2" : "1.1", statusAndVersion[1]);
        return new CurlAnswer(statusAndVersion[0], Normalize(string.Join('\n', lines[..^1])));
    }

    private static string Normalize(string document) => new GatewayNormalizer().Normalize(document);

    /// <summary>The HTTP status curl reported and the body, normalised.</summary>
    private sealed record CurlAnswer(string Status, string Body);
}
