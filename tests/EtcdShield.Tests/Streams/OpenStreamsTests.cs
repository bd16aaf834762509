using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Reload;
using EtcdShield.Streams;
using EtcdShield.Tls;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Streams;

public sealed class OpenStreamsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-streams").FullName;
    private readonly string _policyFile;
    private readonly ReloadableFiles<AccessPolicy> _policy;
    private readonly ReloadableFiles<ClientTrust> _trust = new("client trust", [], () => new ClientTrust([], []));

    public OpenStreamsTests()
    {
        _policyFile = Path.Combine(_dir, "policy.yaml");
        File.WriteAllText(_policyFile, Policy("alice"));
        _policy = new ReloadableFiles<AccessPolicy>("policy", [_policyFile], () => new AccessPolicy(PolicyFile.Load(_policyFile), _policyFile));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Policy(string name) => $$"""
        identities:
          - name: {{name}}
            match: { cn: {{name}} }
            keys: [{ prefix: /a/, permission: read }]
          - name: bob
            match: { cn: bob }
            keys: [{ prefix: /b/, permission: read }]
        """;

    private OpenStreams Streams(int perIdentity, int perConnection) =>
        new(new ShieldOptions { MaxStreamsPerIdentity = perIdentity, MaxStreamsPerConnection = perConnection }, _policy, _trust, NullLogger<OpenStreams>.Instance);

    private Caller As(string name) =>
        new(ClientIdentity.Unknown, _policy.Current.Identities.Single(i => i.Name == name), _policy.Current, "127.0.0.1:1");

    [Fact]
    public async Task All_closed_completes_when_the_last_open_stream_closes_and_at_once_when_none_is_open()
    {
        var streams = Streams(perIdentity: 10, perConnection: 10);
        await streams.AllClosedAsync();
        var first = streams.Open(As("alice"), "c1");
        var second = streams.Open(As("bob"), "c2");

        var closed = streams.AllClosedAsync();
        first.Dispose();
        Assert.False(closed.IsCompleted);
        second.Dispose();

        await closed;
    }

    [Fact]
    public void Refuses_past_the_per_connection_limit_naming_identity_and_flag_and_counts_down_on_close()
    {
        var streams = Streams(perIdentity: 10, perConnection: 2);
        using var first = streams.Open(As("alice"), "c1");
        var second = streams.Open(As("alice"), "c1");

        var refused = Assert.Throws<RpcException>(() => streams.Open(As("alice"), "c1"));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("identity \"alice\"", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("--max-streams-per-connection 2", refused.Status.Detail, StringComparison.Ordinal);
        using var elsewhere = streams.Open(As("alice"), "c2");
        // Disposed twice, counted down once.
        second.Dispose();
        second.Dispose();
        using var again = streams.Open(As("alice"), "c1");
        Assert.Throws<RpcException>(() => streams.Open(As("alice"), "c1"));
    }

    [Fact]
    public void Refuses_past_the_per_identity_limit_across_connections_and_spares_other_identities()
    {
        var streams = Streams(perIdentity: 2, perConnection: 10);
        var opened = new[] { streams.Open(As("alice"), "c1"), streams.Open(As("alice"), "c2") };

        var refused = Assert.Throws<RpcException>(() => streams.Open(As("alice"), "c3"));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("--max-streams-per-identity 2", refused.Status.Detail, StringComparison.Ordinal);
        using var bob = streams.Open(As("bob"), "c1");
        opened[0].Dispose();
        using var alice = streams.Open(As("alice"), "c3");
        opened[1].Dispose();
    }

    [Fact]
    public async Task A_reloaded_policy_tells_every_open_stream()
    {
        var streams = Streams(perIdentity: 10, perConnection: 10);
        using var first = streams.Open(As("alice"), "c1");
        using var second = streams.Open(As("bob"), "c2");
        var firstChanged = first.WaitForChangeAsync(CancellationToken.None);

        File.WriteAllText(_policyFile, Policy("carol"));
        Assert.Equal(ReloadOutcome.Reloaded, _policy.ReloadIfChanged());

        await firstChanged.WaitAsync(TimeSpan.FromSeconds(10));
        await second.WaitForChangeAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
    }
}
