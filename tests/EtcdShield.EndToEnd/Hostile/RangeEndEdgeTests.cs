using System.Text;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A tenant granted read-write on <c>/tenant/</c> crafts key and range_end pairs at the edges of etcd's range
/// arithmetic ("\0" meaning "to the end", the prefix end, one byte past it, backwards ranges, 0xff bytes) to
/// read, delete or watch a key outside its grant. Each is either refused or answers only keys of the grant.
/// </summary>
public sealed class RangeEndEdgeTests(KnownAttacksFixture fixture) : IClassFixture<KnownAttacksFixture>
{
    /// <summary>Keys just outside the grant, on both sides of it, planted by the administrator.</summary>
    private static readonly string[] Outside = ["/tenant", "/tenant.x", "/tenant0", "/tenant0/secret", "/tenanu", "/zzz", "\u0001"];

    /// <summary>name, key, range_end, and the keys the tenant gets (null: refused).</summary>
    public static TheoryData<string, byte[], byte[], string[]?> Ranges() => new()
    {
        { "from the prefix to the end of the keyspace", Bytes("/tenant/"), [0], null },
        { "the whole keyspace", [0], [0], null },
        { "one byte past the prefix end", Bytes("/tenant/"), Bytes("/tenant1"), null },
        { "starting one byte before the prefix", Bytes("/tenant."), Bytes("/tenant0"), null },
        { "the key that is the prefix end", Bytes("/tenant0"), [], null },
        { "the prefix without its slash", Bytes("/tenant"), [], null },
        { "exactly the prefix", Bytes("/tenant/"), Bytes("/tenant0"), ["/tenant/own"] },
        { "from a 0xff key to the prefix end", [.. Bytes("/tenant/"), 0xff, 0xff], Bytes("/tenant0"), [] },
    };

    [Theory]
    [MemberData(nameof(Ranges))]
    public async Task A_range_at_the_edge_of_the_grant_reads_nothing_outside_it(string name, byte[] key, byte[] rangeEnd, string[]? expected)
    {
        await PlantAsync();
        using var channel = fixture.TenantChannel();
        var kv = new KV.KVClient(channel);

        var range = kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFrom(key), RangeEnd = ByteString.CopyFrom(rangeEnd) }).ResponseAsync;

        if (expected is null)
        {
            var denial = await Assert.ThrowsAsync<RpcException>(() => range);
            Assert.True(denial.StatusCode == StatusCode.PermissionDenied, $"{name}: {denial.Status}");
        }
        else
        {
            var answer = await range;
            Assert.Equal(expected, answer.Kvs.Select(kvs => kvs.Key.ToStringUtf8()));
            Assert.All(answer.Kvs, kvs => Assert.Equal("mine", kvs.Value.ToStringUtf8()));
        }
    }

    [Fact]
    public async Task A_backwards_range_starting_inside_the_grant_answers_no_key()
    {
        await PlantAsync();
        using var channel = fixture.TenantChannel();
        var kv = new KV.KVClient(channel);

        // range_end below key: etcd reads it as an empty range. Whatever the proxy decides, nothing leaks.
        try
        {
            var answer = await kv.RangeAsync(new RangeRequest { Key = B("/tenant/zz"), RangeEnd = B("/") });
            Assert.Empty(answer.Kvs);
        }
        catch (RpcException denial)
        {
            Assert.Equal(StatusCode.PermissionDenied, denial.StatusCode);
        }
    }

    [Theory]
    [InlineData("\0")]
    [InlineData("/tenant1")]
    public async Task A_delete_from_inside_the_grant_past_its_end_is_refused_and_deletes_nothing(string rangeEnd)
    {
        await PlantAsync();
        using var channel = fixture.TenantChannel();
        var kv = new KV.KVClient(channel);

        var denial = await Assert.ThrowsAsync<RpcException>(() => kv.DeleteRangeAsync(new DeleteRangeRequest { Key = B("/tenant/"), RangeEnd = B(rangeEnd) }).ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, denial.StatusCode);
        Assert.Equal(Outside.Length + 1, await StoredCountAsync());
    }

    [Fact]
    public async Task A_watch_of_the_whole_keyspace_is_cancelled_as_etcd_cancels_a_forbidden_watch()
    {
        await PlantAsync();
        using var channel = fixture.TenantChannel();
        using var watch = new Watch.WatchClient(channel).Watch();

        await watch.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFrom([0]), RangeEnd = ByteString.CopyFrom([0]), StartRevision = 1 } });
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        var answer = watch.ResponseStream.Current;

        Assert.True(answer.Created && answer.Canceled, answer.ToString());
        Assert.Contains("PermissionDenied", answer.CancelReason, StringComparison.Ordinal);
        Assert.Empty(answer.Events);
    }

    private async Task PlantAsync()
    {
        using var channel = fixture.AdminChannel();
        var kv = new KV.KVClient(channel);
        await kv.PutAsync(new PutRequest { Key = B("/tenant/own"), Value = B("mine") });
        foreach (var key in Outside)
        {
            await kv.PutAsync(new PutRequest { Key = B(key), Value = B("not-for-the-tenant") });
        }
    }

    private async Task<long> StoredCountAsync()
    {
        using var channel = fixture.EtcdChannel();
        var all = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = ByteString.CopyFrom([0]), RangeEnd = ByteString.CopyFrom([0]), CountOnly = true });
        return all.Count;
    }

    private static ByteString B(string text) => ByteString.CopyFrom(Encoding.UTF8.GetBytes(text));

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);
}
