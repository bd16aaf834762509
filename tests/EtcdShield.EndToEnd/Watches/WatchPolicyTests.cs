using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Reload;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// Two identities watch the same range; a policy reload takes the range from one of them. Its watch is cancelled as
/// a policy cancel looks and receives nothing after; the other identity's identical watch goes on and still sees
/// exactly what etcd sends, whether or not the two shared one upstream watch.
/// </summary>
[Collection(WatchEtcd.Name)]
public sealed class WatchPolicyTests(WatchFixture fixture)
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task A_watch_whose_identity_loses_the_range_is_cancelled_while_another_identity_watching_it_goes_on(string mode)
    {
        var p = SharedEtcd.NewPrefix("policy");
        string Policy(bool firstMayRead) => $$"""
            identities:
              - name: first-reader
                match: { cn: watch-first-reader }
                keys:
                  - { prefix: "{{(firstMayRead ? p : p + "elsewhere/")}}", permission: read }
              - name: second-reader
                match: { cn: watch-second-reader }
                keys:
                  - { prefix: "{{p}}", permission: read }
            """;
        var policyFile = Path.Combine(fixture.Pki.Directory, $"policy-{mode}.yaml");
        await File.WriteAllTextAsync(policyFile, Policy(firstMayRead: true));
        await using var proxy = await fixture.StartProxyAsync(mode, ["--policy-file", policyFile, "--reload-interval", "1h"]);
        var first = fixture.Pki.IssueClient($"watch-first-{mode}", "watch-first-reader");
        var second = fixture.Pki.IssueClient($"watch-second-{mode}", "watch-second-reader");
        using var firstChannel = proxy.NewChannel(first);
        await using var losing = new WatchSession(firstChannel);
        await using var keeping = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel(second));
        var range = new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0"), PrevKv = true };
        await losing.CreateAsync(range);
        Assert.False((await losing.NextAsync(r => r.Created)).Canceled);
        await keeping.CreateAsync(range);
        var load = new Workload(proxy.Channel, p);

        var before = await load.PutAsync("k1", "seen by both");
        await losing.NextAsync(r => r.Events.Any(e => e.Kv.ModRevision == before));
        var writes = load.RunAsync(writers: 2, operations: 30, seed: 41);
        await File.WriteAllTextAsync(policyFile + ".new", Policy(firstMayRead: false));
        File.Move(policyFile + ".new", policyFile, overwrite: true);
        Assert.Equal(ReloadOutcome.Reloaded, proxy.Shield.Services.GetRequiredService<ConfigurationReloader>().ReloadNow()["policy"]);
        var cancelled = await losing.NextAsync(r => r.Canceled);
        await writes;
        var (_, put) = await load.CloseAsync([B(p + "k1")]);
        await keeping.WaitForAsync([(0, put)]);

        var sent = await keeping.AssertSameAsync();
        Assert.Equal(0, cancelled.WatchId);
        Assert.False(cancelled.Created);
        Assert.StartsWith("rpc error: code = PermissionDenied desc = etcdshield: permission denied: identity \"first-reader\"", cancelled.CancelReason, StringComparison.Ordinal);
        var lost = await WatchTranscript.ReadAsync(losing.Received, null);
        lost.AssertConsistent();
        var index = losing.Received.ToList().FindIndex(r => r.Canceled);
        Assert.DoesNotContain(losing.Received.Skip(index), r => r.Events.Count > 0);
        Assert.Equal(sent.Events(0).Take(lost.Events(0).Count), lost.Events(0));
        Assert.True(lost.Events(0).Count < sent.Events(0).Count, "the first reader saw everything: its watch was not cancelled before the last write");
    }
}
