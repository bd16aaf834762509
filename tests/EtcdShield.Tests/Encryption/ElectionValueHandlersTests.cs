using System.Globalization;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Protocol.V3electionpb;
using Grpc.Core;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>Election values: sealed to the session key etcd will store them under, within etcd's request limit, and opened on the way back.</summary>
public sealed class ElectionValueHandlersTests : IDisposable
{
    private const long Lease = 0x2a;

    private readonly ValueHandlerBed _bed = new();

    public ElectionValueHandlersTests()
    {
        _bed.Etcd.OnEvery("Election/Campaign", _ => new CampaignResponse { Leader = Leader() });
        _bed.Etcd.OnEvery("Election/Proclaim", _ => new ProclaimResponse());
    }

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task A_campaign_value_reaches_etcd_sealed_to_the_session_key()
    {
        await _bed.CallAsync<CampaignResponse>(_bed.Campaign, "Election/Campaign", new CampaignRequest { Name = Utf8("/e"), Lease = Lease, Value = Utf8("me") });

        var sent = Assert.Single(_bed.Etcd.SentTo<CampaignRequest>("Election/Campaign"));
        Assert.Equal("me", _bed.Open(Utf8("/e/2a"), sent.Value));
        var elsewhere = Assert.Throws<RpcException>(() => _bed.Open(Utf8("/e"), sent.Value));
        Assert.Equal(StatusCode.DataLoss, elsewhere.StatusCode);
    }

    [Fact]
    public async Task A_campaign_or_proclaim_over_the_request_limit_as_plaintext_is_refused_as_etcd_refuses_it()
    {
        var value = Utf8(new string('x', MaxRequestBytes));

        var campaign = await Assert.ThrowsAsync<RpcException>(() =>
            _bed.CallAsync<CampaignResponse>(_bed.Campaign, "Election/Campaign", new CampaignRequest { Name = Utf8("/e"), Lease = Lease, Value = value }));
        var proclaim = await Assert.ThrowsAsync<RpcException>(() =>
            _bed.CallAsync<ProclaimResponse>(_bed.Proclaim, "Election/Proclaim", new ProclaimRequest { Leader = Leader(), Value = value }));

        Assert.All(new[] { campaign, proclaim }, refusal => Assert.Equal((StatusCode.InvalidArgument, "etcdserver: request is too large"), (refusal.StatusCode, refusal.Status.Detail)));
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_campaign_that_fits_only_as_plaintext_is_refused_by_the_proxy_with_the_sealed_size()
    {
        var request = new CampaignRequest { Name = Utf8("/e"), Lease = Lease, Value = Utf8(FitsOnlyAsPlaintext("/e/2a")) };
        Assert.True(request.CalculateSize() <= MaxRequestBytes);
        var sealedSize = SealedSize(request.Clone(), "/e/2a");

        var refusal = await Assert.ThrowsAsync<RpcException>(() => _bed.CallAsync<CampaignResponse>(_bed.Campaign, "Election/Campaign", request));

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.Equal($"etcdshield: request is too large after encryption ({sealedSize} bytes, etcd accepts at most {MaxRequestBytes})", refusal.Status.Detail);
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_proclaim_that_fits_only_as_plaintext_is_refused_by_the_proxy_and_one_that_fits_reaches_etcd_sealed()
    {
        var tooLarge = new ProclaimRequest { Leader = Leader(), Value = Utf8(FitsOnlyAsPlaintext("/e/2a")) };
        var sealedSize = SealedSize(tooLarge.Clone(), "/e/2a");

        var refusal = await Assert.ThrowsAsync<RpcException>(() => _bed.CallAsync<ProclaimResponse>(_bed.Proclaim, "Election/Proclaim", tooLarge));
        await _bed.CallAsync<ProclaimResponse>(_bed.Proclaim, "Election/Proclaim", new ProclaimRequest { Leader = Leader(), Value = Utf8("news") });

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.Equal($"etcdshield: request is too large after encryption ({sealedSize} bytes, etcd accepts at most {MaxRequestBytes})", refusal.Status.Detail);
        var sent = Assert.Single(_bed.Etcd.SentTo<ProclaimRequest>("Election/Proclaim"));
        Assert.Equal("news", _bed.Open(Utf8("/e/2a"), sent.Value));
    }

    [Fact]
    public async Task Leader_and_observed_announcements_are_opened()
    {
        var announced = new KeyValue { Key = Utf8("/e/2a"), Value = _bed.Seal("/e/2a", "me"), Version = 1 };
        _bed.Etcd.OnEvery("Election/Leader", _ => new LeaderResponse { Kv = announced });

        var leader = await _bed.CallAsync<LeaderResponse>(_bed.Leader, "Election/Leader", new LeaderRequest { Name = Utf8("/e") });
        var observed = (LeaderResponse)await _bed.Observe.RewriteResponseAsync(new LeaderResponse { Kv = announced.Clone() }, CancellationToken.None);
        var planted = await Assert.ThrowsAsync<RpcException>(() =>
            _bed.Observe.RewriteResponseAsync(new LeaderResponse { Kv = new KeyValue { Key = Utf8("/e/2a"), Value = Utf8("me"), Version = 1 } }, CancellationToken.None).AsTask());

        Assert.Equal(("me", "me"), (leader.Kv.Value.ToStringUtf8(), observed.Kv.Value.ToStringUtf8()));
        Assert.Equal((StatusCode.DataLoss, "etcdshield: cannot decrypt value of key \"/e/2a\": value is not encrypted"), (planted.StatusCode, planted.Status.Detail));
    }

    private static LeaderKey Leader() => new() { Name = Utf8("/e"), Key = Utf8("/e/" + Lease.ToString("x", CultureInfo.InvariantCulture)), Lease = Lease, Rev = 3 };

    /// <summary>A value whose envelope is within the value limit by one byte, so only the rest of the request overflows.</summary>
    private string FitsOnlyAsPlaintext(string sealedKey) => new('x', MaxRequestBytes - _bed.Seal(sealedKey, "").Length - 1);

    private int SealedSize(CampaignRequest request, string sealedKey)
    {
        request.Value = _bed.Seal(Utf8(sealedKey), request.Value);
        return request.CalculateSize();
    }

    private int SealedSize(ProclaimRequest request, string sealedKey)
    {
        request.Value = _bed.Seal(Utf8(sealedKey), request.Value);
        return request.CalculateSize();
    }
}
