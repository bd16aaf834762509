using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>Watch responses on their way to the client: every event's kv and prev_kv opened, and a value the proxy did not seal ends the stream.</summary>
public sealed class WatchValueRewriterTests : IDisposable
{
    private readonly ValueHandlerBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task Every_event_kv_and_prev_kv_is_opened_and_a_deletion_tombstone_left_as_it_is()
    {
        var response = new WatchResponse
        {
            WatchId = 4,
            Events =
            {
                new Event { Type = Event.Types.EventType.Put, Kv = Sealed("/a", "new", version: 2), PrevKv = Sealed("/a", "old", version: 1) },
                new Event { Type = Event.Types.EventType.Delete, Kv = new KeyValue { Key = Utf8("/b"), ModRevision = 9 }, PrevKv = Sealed("/b", "gone", version: 3) },
            },
        };

        var rewritten = (WatchResponse)await RewriteAsync(response);

        Assert.Equal(
            [("/a", "new", "old"), ("/b", "", "gone")],
            rewritten.Events.Select(e => (e.Kv.Key.ToStringUtf8(), e.Kv.Value.ToStringUtf8(), e.PrevKv.Value.ToStringUtf8())));
        Assert.Equal(4, rewritten.WatchId);
    }

    [Fact]
    public async Task A_plaintext_value_in_an_event_ends_the_stream_with_data_loss_naming_the_key()
    {
        var response = new WatchResponse
        {
            Events =
            {
                new Event { Kv = Sealed("/a", "fine", version: 1) },
                new Event { Kv = new KeyValue { Key = Utf8("/planted"), Value = Utf8("plain"), Version = 1 } },
            },
        };

        var refusal = await Assert.ThrowsAsync<RpcException>(() => RewriteAsync(response).AsTask());

        Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        Assert.Equal("etcdshield: cannot decrypt value of key \"/planted\": value is not encrypted", refusal.Status.Detail);
    }

    [Fact]
    public async Task A_value_sealed_for_another_key_fails_authentication_in_prev_kv_too()
    {
        // An etcd writer moved a genuine envelope of /other under /a: it only opens under the key it was sealed to.
        var moved = new KeyValue { Key = Utf8("/a"), Value = _bed.Seal("/other", "theirs"), Version = 1 };
        var response = new WatchResponse { Events = { new Event { Kv = Sealed("/a", "fine", version: 2), PrevKv = moved } } };

        var refusal = await Assert.ThrowsAsync<RpcException>(() => RewriteAsync(response).AsTask());

        Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        Assert.Equal("etcdshield: cannot decrypt value of key \"/a\": authentication failed", refusal.Status.Detail);
        Assert.DoesNotContain("theirs", refusal.Status.Detail, StringComparison.Ordinal);
    }

    private ValueTask<IMessage> RewriteAsync(WatchResponse response) => _bed.Watch.RewriteResponseAsync(response, CancellationToken.None);

    private KeyValue Sealed(string key, string plaintext, long version) =>
        new() { Key = Utf8(key), Value = _bed.Seal(key, plaintext), Version = version, ModRevision = 5 };
}
