using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// Someone with raw write access to etcd plants values shaped to trip the envelope parser: lengths that point
/// past the end of the value, a maximal KEK id, a megabyte of junk behind a valid magic. Each is DATA_LOSS naming
/// the key and never echoing the bytes, and the proxy keeps serving. (Bit flips, truncation, moved and foreign
/// envelopes of every field: Encryption/TamperTests.)
/// </summary>
public sealed class TamperedEnvelopeTests(KnownAttacksFixture fixture) : IClassFixture<KnownAttacksFixture>
{
    private static readonly byte[] Magic = "ESH"u8.ToArray();

    public static TheoryData<string, byte[]> Forgeries() => new()
    {
        { "a wrapped DEK length pointing past the end", [.. Magic, 1, 16, .. new byte[16], 4, .. "kms:"u8, 0xff, 0xff, 1, 2, 3] },
        { "a maximal KEK id and nothing after it", [.. Magic, 1, 16, .. new byte[16], 255, .. Enumerable.Repeat((byte)'k', 255)] },
        { "a KEK id of control characters", [.. Magic, 1, 16, .. new byte[16], 3, 0, 1, 2, 0, 40, .. new byte[40 + 12 + 16]] },
        { "a megabyte of junk behind a valid header start", [.. Magic, 1, 16, .. new byte[16], 4, .. "kms:"u8, 0, 40, .. new byte[1 << 20]] },
        { "a version from the future", [.. Magic, 2, .. new byte[100]] },
    };

    [Theory]
    [MemberData(nameof(Forgeries))]
    public async Task A_planted_value_shaped_to_trip_the_parser_is_data_loss_naming_only_the_key(string name, byte[] planted)
    {
        var key = "/tenant/forged-" + Guid.NewGuid().ToString("N")[..8];
        using (var direct = fixture.EtcdChannel())
        {
            await new KV.KVClient(direct).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFrom(planted) });
        }

        using var channel = fixture.TenantChannel();
        var kv = new KV.KVClient(channel);

        var refusal = await Assert.ThrowsAsync<RpcException>(() => kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) }).ResponseAsync);

        Assert.True(refusal.StatusCode == StatusCode.DataLoss, $"{name}: {refusal.Status}");
        Assert.Contains(key, refusal.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("kkkk", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.True(refusal.Status.Detail.Length < 300, refusal.Status.Detail);
        var after = await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key + "-after"), Value = ByteString.CopyFromUtf8("served") });
        Assert.True(after.Header.Revision > 0);
    }
}
