using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// Rollback protection through the value handlers: what is written under a protected prefix is bound to its place in
/// the key's history and committed under the guard of that place; what is read is checked against where etcd holds it.
/// </summary>
public sealed class BoundWritesTests : IDisposable
{
    private const string Protected = "/registry/secrets/";
    private const string Key = Protected + "s";

    private readonly ValueHandlerBed _bed = new(rollbackProtected: Protected);

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task Each_put_is_sealed_for_the_version_it_gives_the_key_and_reads_back()
    {
        await PutAsync(Key, "v1");
        var first = _bed.Etcd.Store.Get(Key)!;
        await PutAsync(Key, "v2");
        var second = _bed.Etcd.Store.Get(Key)!;

        Assert.Equal(new KeyPlace(0, 1), Place(first.Value));
        Assert.Equal(new KeyPlace(first.CreateRevision, 2), Place(second.Value));
        Assert.Equal("v2", (await RangeAsync(Key)).Kvs[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task An_older_value_put_back_directly_into_etcd_is_refused_with_data_loss_naming_the_key()
    {
        await PutAsync(Key, "revoked password");
        var saved = _bed.Etcd.Store.Get(Key)!.Value;
        await PutAsync(Key, "new password");

        _bed.Etcd.Store.Put(Key, saved);
        var refusal = await Assert.ThrowsAsync<RpcException>(() => RangeAsync(Key));

        Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        Assert.StartsWith($"etcdshield: cannot decrypt value of key \"{Key}\": the value was sealed for version 1", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("rolled back", refusal.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_value_saved_from_another_lifetime_of_the_key_is_refused_even_at_the_same_version()
    {
        await PutAsync(Key, "old lifetime 1");
        await PutAsync(Key, "old lifetime 2");
        var saved = _bed.Etcd.Store.Get(Key)!.Value;
        _bed.Etcd.Store.Delete(Key);
        await PutAsync(Key, "new lifetime 1");

        // The key is back at version 2, as when the value was saved, but in a lifetime created at another revision.
        _bed.Etcd.Store.Put(Key, saved);

        var refusal = await Assert.ThrowsAsync<RpcException>(() => RangeAsync(Key));
        Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        Assert.Contains("rolled back", refusal.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_write_between_the_read_of_the_place_and_the_commit_is_caught_and_the_put_sealed_again_for_the_new_place()
    {
        await PutAsync(Key, "v1");
        _bed.Clock.PausesAllowed = true;
        // Another writer moves the key right after the proxy read where it stands.
        _bed.Etcd.ThenNext("KV/Txn", store => store.Put(Key, _bed.Etcd.Store.Get(Key)!.Value));

        var pending = PutAsync(Key, "mine");
        await _bed.PassPauseAsync(pending);
        await pending;

        var stored = _bed.Etcd.Store.Get(Key)!;
        Assert.Equal(3, stored.Version);
        Assert.Equal(new KeyPlace(stored.CreateRevision, 3), Place(stored.Value));
        Assert.Equal("mine", (await RangeAsync(Key)).Kvs[0].Value.ToStringUtf8());
        var txns = _bed.Etcd.SentTo<TxnRequest>("KV/Txn");
        // Attempt 1: a serializable read, a commit whose guard failed; attempt 2 reads linearizably.
        Assert.True(txns[2].Success[0].RequestRange.Serializable);
        Assert.False(txns[^2].Success[0].RequestRange.Serializable);
        Assert.Equal(1, _bed.GuardRetries.GetMeasurementSnapshot().EvaluateAsCounter());
    }

    [Fact]
    public async Task An_ignore_value_put_keeps_the_plaintext_and_seals_it_again_for_the_new_version()
    {
        await PutAsync(Key, "kept");

        await _bed.CallAsync<PutResponse>(_bed.Put, "KV/Put", new PutRequest { Key = Utf8(Key), IgnoreValue = true, Lease = 7 });

        var stored = _bed.Etcd.Store.Get(Key)!;
        Assert.Equal((2L, 7L), (stored.Version, stored.Lease));
        Assert.Equal("kept", (await RangeAsync(Key)).Kvs[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task Kube_apiservers_guarded_update_and_create_work_and_answer_as_etcd_does()
    {
        var create = new TxnRequest
        {
            Compare = { new Compare { Key = Utf8(Key), Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = 0 } },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = Utf8(Key), Value = Utf8("created") } } },
            Failure = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8(Key) } } },
        };
        Assert.True((await TxnAsync(create)).Succeeded);
        var mod = _bed.Etcd.Store.Get(Key)!.ModRevision;

        var stale = await TxnAsync(create);
        var update = create.Clone();
        update.Compare[0].ModRevision = mod;
        update.Success[0].RequestPut.Value = Utf8("updated");
        var updated = await TxnAsync(update);

        Assert.False(stale.Succeeded);
        Assert.Equal("created", stale.Responses[0].ResponseRange.Kvs[0].Value.ToStringUtf8());
        Assert.True(updated.Succeeded);
        Assert.Equal("updated", (await RangeAsync(Key)).Kvs[0].Value.ToStringUtf8());
        Assert.Equal(new KeyPlace(_bed.Etcd.Store.Get(Key)!.CreateRevision, 2), Place(_bed.Etcd.Store.Get(Key)!.Value));
    }

    [Fact]
    public async Task An_unbound_value_under_the_protected_prefix_is_refused_and_outside_it_values_stay_unbound()
    {
        _bed.Etcd.Store.Put(Key, _bed.SealUnbound(Key, "sealed before protection"));
        await PutAsync("/other", "not protected");

        var refusal = await Assert.ThrowsAsync<RpcException>(() => RangeAsync(Key));

        Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        Assert.Contains("not bound to its place", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(ValueEnvelope.Version1, _bed.Etcd.Store.Get("/other")!.Value[3]);
    }

    [Fact]
    public async Task A_forged_place_in_the_header_fails_authentication()
    {
        await PutAsync(Key, "v1");
        await PutAsync(Key, "v2");
        var stored = _bed.Etcd.Store.Get(Key)!;
        var forged = stored.Value.ToByteArray();
        // Claim version 3 (where the value will sit once put back), keeping everything else.
        var place = ValueEnvelope.Parse(forged).Length - ValueEnvelope.NonceSize - 1;
        forged[place] = 3;

        _bed.Etcd.Store.Put(Key, ByteString.CopyFrom(forged));
        var refusal = await Assert.ThrowsAsync<RpcException>(() => RangeAsync(Key));

        Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        Assert.Contains("authentication failed", refusal.Status.Detail, StringComparison.Ordinal);
    }

    private static KeyPlace Place(ByteString stored) => ValueEnvelope.Parse(stored.Span).Place!.Value;

    private Task<PutResponse> PutAsync(string key, string value) =>
        _bed.CallAsync<PutResponse>(_bed.Put, "KV/Put", new PutRequest { Key = Utf8(key), Value = Utf8(value) });

    private Task<RangeResponse> RangeAsync(string key) =>
        _bed.CallAsync<RangeResponse>(_bed.Range, "KV/Range", new RangeRequest { Key = Utf8(key) });

    private Task<TxnResponse> TxnAsync(TxnRequest request) => _bed.CallAsync<TxnResponse>(_bed.Txn, "KV/Txn", request);
}
