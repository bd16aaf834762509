using System.Globalization;
using System.Text;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Protocol.V3electionpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.StoredValue;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using LockClient = EtcdShield.Protocol.V3lockpb.Lock.LockClient;
using LockRequest = EtcdShield.Protocol.V3lockpb.LockRequest;
using UnlockRequest = EtcdShield.Protocol.V3lockpb.UnlockRequest;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Issue #15 against a real etcd: under <c>--rollback-protection-prefix /registry/secrets/</c> every value is sealed
/// in envelope version 2, bound to its key's create_revision and version, so an old envelope written back straight
/// into etcd (same key, same or an earlier lifetime) is refused with DATA_LOSS on every read path, while every
/// ordinary client pattern (kube-apiserver's guarded Txn, etcdctl, python-etcd3, elections, locks, watch replays)
/// keeps working. Outside the prefix values stay version 1 and a restore is served, as before.
/// </summary>
public sealed class RollbackProtectionTests(RollbackProtectionTests.ProtectingProxy etcd) : IClassFixture<RollbackProtectionTests.ProtectingProxy>
{
    internal const string ProtectedPrefix = "/registry/secrets/";

    /// <summary>Encrypted but not rollback-protected: values stay envelope version 1.</summary>
    internal const string UnprotectedPrefix = "/registry/configmaps/";

    private const string Python = "/usr/bin/python3";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    /// <summary>"ESH" and version 2: an envelope bound to its place in the key's history.</summary>
    internal static readonly byte[] BoundMagic = [0x45, 0x53, 0x48, 0x02];

    [Fact]
    public async Task An_old_envelope_restored_over_a_newer_value_is_refused_by_range_txn_and_watch()
    {
        var key = NewKey("restore") + "token";
        await etcd.PutAsync(key, "revoked-password-one");
        var saved = await RawByEtcdctlAsync(key);
        await etcd.PutAsync(key, "current-password-two");
        var beforeRestore = await etcd.GetAsync(key);
        var failuresBefore = etcd.Meters.Total(ProxyMeters.DecryptFailures, "rolled_back");

        var restoredAt = await etcd.PlantAsync(key, saved);
        var range = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(key));
        var failuresAfterRange = etcd.Meters.Total(ProxyMeters.DecryptFailures, "rolled_back");
        var txn = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8(key) } } },
        }).ResponseAsync);
        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest { Key = Utf8(key), StartRevision = restoredAt });
        var watchFailure = await watch.ReadUntilFailureAsync();

        AssertBound(saved, "revoked-password-one");
        Assert.Equal("current-password-two", beforeRestore);
        AssertRolledBack(range, key, "revoked-password-one", "current-password-two");
        AssertRolledBack(txn, key, "revoked-password-one", "current-password-two");
        AssertRolledBack(watchFailure, key, "revoked-password-one", "current-password-two");
        Assert.Empty(watch.Responses.SelectMany(r => r.Events));
        Assert.Equal(failuresBefore + 1, failuresAfterRange);
        Assert.True(etcd.Meters.Total(ProxyMeters.DecryptFailures, "rolled_back") >= failuresBefore + 3);
    }

    [Fact]
    public async Task A_restored_envelope_is_refused_by_a_value_compare_and_in_prev_kv_and_a_fresh_write_heals_the_key()
    {
        var prefix = NewKey("restore-compare");
        var key = prefix + "k";
        await etcd.PutAsync(key, "old-value");
        var saved = (await etcd.StoredAsync(key))!;
        await etcd.PutAsync(key, "newer-value");
        await etcd.PlantAsync(key, saved);

        var compare = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Compare = { new Compare { Key = Utf8(key), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8("old-value") } },
            Success = { WritePathTests.Put(prefix + "written-on-success", "no") },
            Failure = { WritePathTests.Put(prefix + "written-on-failure", "no") },
        }).ResponseAsync);
        var prevKv = await Assert.ThrowsAsync<RpcException>(() => etcd.PutAsync(key, "fresh-value", prevKv: true));

        AssertRolledBack(compare, key, "old-value", "newer-value");
        AssertRolledBack(prevKv, key, "old-value", "newer-value");
        Assert.Null(await etcd.StoredAsync(prefix + "written-on-success"));
        Assert.Null(await etcd.StoredAsync(prefix + "written-on-failure"));
        Assert.Equal("fresh-value", await etcd.GetAsync(key));
    }

    [Fact]
    public async Task A_live_watch_delivers_the_genuine_write_then_ends_with_data_loss_at_the_restore_and_delete_prev_kv_refuses_it()
    {
        var key = NewKey("restore-live") + "k";
        await etcd.PutAsync(key, "live-old");
        var saved = (await etcd.StoredAsync(key))!;
        await using var live = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest { Key = Utf8(key), PrevKv = true });
        var genuine = await etcd.PutAsync(key, "live-new");
        var delivered = await live.ReadEventsAsync(1);

        var restoredAt = await etcd.PlantAsync(key, saved);
        var liveFailure = await live.ReadUntilFailureAsync();
        var delete = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(key), PrevKv = true }).ResponseAsync);

        Assert.Equal([("live-new", genuine.Header.Revision, "live-old")], delivered.Select(e => (e.Kv.Value.ToStringUtf8(), e.Kv.ModRevision, e.PrevKv.Value.ToStringUtf8())));
        AssertRolledBack(liveFailure, key, "live-old", "live-new");
        Assert.All(live.Responses.SelectMany(r => r.Events), e => Assert.True(e.Kv.ModRevision < restoredAt));
        AssertRolledBack(delete, key, "live-old", "live-new");
        Assert.Null(await etcd.StoredAsync(key));
    }

    [Fact]
    public async Task An_envelope_saved_from_an_earlier_lifetime_of_the_key_is_refused_after_two_writes()
    {
        var key = NewKey("lifetime") + "k";
        await etcd.PutAsync(key, "first-lifetime");
        var saved = (await etcd.StoredAsync(key))!;
        await etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(key) });
        await etcd.PutAsync(key, "second-lifetime-one");
        await etcd.PutAsync(key, "second-lifetime-two");

        await etcd.PlantAsync(key, saved);
        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(key));

        AssertRolledBack(refusal, key, "first-lifetime");
    }

    [Fact]
    public async Task An_envelope_from_an_earlier_lifetime_at_the_same_version_is_refused_for_its_create_revision()
    {
        // Version 2 of the first lifetime lands at version 2 of the second: only create_revision tells them apart.
        var key = NewKey("lifetime-version") + "k";
        await etcd.PutAsync(key, "first-lifetime-one");
        await etcd.PutAsync(key, "first-lifetime-two");
        var saved = (await etcd.StoredAsync(key))!;
        await etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(key) });
        await etcd.PutAsync(key, "second-lifetime-one");

        await etcd.PlantAsync(key, saved);
        var planted = (await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(key) })).Kvs.Single();
        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(key));

        Assert.Equal(2, planted.Version);
        AssertRolledBack(refusal, key, "first-lifetime-two");
    }

    [Fact]
    public async Task A_restored_election_value_is_refused_by_leader()
    {
        var name = NewKey("restore-election") + "e";
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var campaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = await GrantAsync(), Value = Utf8("leader-value-one") }, deadline: DateTime.UtcNow + Deadline);
        var saved = (await etcd.StoredAsync(campaign.Leader.Key.ToStringUtf8()))!;
        await election.ProclaimAsync(new ProclaimRequest { Leader = campaign.Leader, Value = Utf8("leader-value-two") });
        var beforeRestore = await election.LeaderAsync(new LeaderRequest { Name = Utf8(name) });

        await etcd.EtcdKv.PutAsync(new PutRequest { Key = campaign.Leader.Key, Value = saved, IgnoreLease = true });
        var refusal = await Assert.ThrowsAsync<RpcException>(() => election.LeaderAsync(new LeaderRequest { Name = Utf8(name) }).ResponseAsync);

        AssertBound(saved, "leader-value-one");
        Assert.Equal("leader-value-two", beforeRestore.Kv.Value.ToStringUtf8());
        AssertRolledBack(refusal, campaign.Leader.Key.ToStringUtf8(), "leader-value-one");
    }

    [Fact]
    public async Task Kube_apiserver_guarded_transactions_create_update_conflict_and_delete_as_on_plain_etcd()
    {
        var key = Utf8(NewKey("kube") + "secret");
        var create = await etcd.ProxyKv.TxnAsync(Guarded(key, 0, Put(key, "created")));
        var created = (await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = key })).Kvs.Single();
        var update = await etcd.ProxyKv.TxnAsync(Guarded(key, created.ModRevision, Put(key, "updated")));
        var storedAfterUpdate = await etcd.StoredAsync(key.ToStringUtf8());
        var stale = await etcd.ProxyKv.TxnAsync(Guarded(key, created.ModRevision, Put(key, "lost-update")));
        var createAgain = await etcd.ProxyKv.TxnAsync(Guarded(key, 0, Put(key, "created-twice")));
        var current = stale.Responses.Single().ResponseRange.Kvs.Single();
        var delete = await etcd.ProxyKv.TxnAsync(Guarded(key, current.ModRevision, new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } }));

        Assert.True(create.Succeeded);
        Assert.Equal(("created", 1L), (created.Value.ToStringUtf8(), created.Version));
        Assert.True(update.Succeeded);
        AssertBound(storedAfterUpdate, "updated");
        Assert.False(stale.Succeeded);
        Assert.Equal(("updated", 2L), (current.Value.ToStringUtf8(), current.Version));
        Assert.False(createAgain.Succeeded);
        Assert.Equal("updated", createAgain.Responses.Single().ResponseRange.Kvs.Single().Value.ToStringUtf8());
        Assert.True(delete.Succeeded);
        Assert.Null(await etcd.StoredAsync(key.ToStringUtf8()));
    }

    [Fact]
    public async Task Etcdctl_txn_with_mod_revision_compares_put_prev_kv_and_ignore_value_work_unchanged()
    {
        var key = NewKey("etcdctl") + "k";
        var etcdctl = etcd.Shield.Etcdctl(etcd.Pki);
        (await etcdctl.RunAsync("put", key, "one")).EnsureSuccess();
        var modRevision = (await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(key) })).Kvs.Single().ModRevision;
        var txn = $"mod(\"{key}\") = \"{modRevision}\"\n\nput {key} two\n\nget {key}\n\n";

        var swapped = (await etcdctl.RunAsync(["txn"], txn)).EnsureSuccess();
        var conflicted = (await etcdctl.RunAsync(["txn"], txn)).EnsureSuccess();
        var prevKv = (await etcdctl.RunAsync("put", key, "three", "--prev-kv")).EnsureSuccess();
        var storedBeforeIgnore = await etcd.StoredAsync(key);
        (await etcdctl.RunAsync("put", key, "--ignore-value")).EnsureSuccess();
        var storedAfterIgnore = await etcd.StoredAsync(key);
        var afterIgnore = (await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(key) })).Kvs.Single();
        var get = (await etcdctl.RunAsync("get", key)).EnsureSuccess();

        Assert.Equal(["SUCCESS", "", "OK"], swapped.StdOutLines);
        Assert.Equal(["FAILURE", "", key, "two"], conflicted.StdOutLines);
        Assert.Equal(["OK", key, "two"], prevKv.StdOutLines);
        Assert.Equal(("three", 4L), (afterIgnore.Value.ToStringUtf8(), afterIgnore.Version));
        AssertBound(storedBeforeIgnore, "three");
        AssertBound(storedAfterIgnore, "three");
        Assert.Equal([key, "three"], get.StdOutLines);
    }

    [Fact]
    public async Task A_deleted_and_recreated_key_reads_and_a_watch_from_revision_one_replays_every_version()
    {
        var prefix = NewKey("replay");
        await etcd.PutAsync(prefix + "a", "a-one");
        await etcd.PutAsync(prefix + "a", "a-two");
        await etcd.ProxyKv.PutAsync(new PutRequest { Key = Utf8(prefix + "a"), IgnoreValue = true });
        await etcd.ProxyKv.TxnAsync(new TxnRequest { Success = { WritePathTests.Put(prefix + "b", "b-one") } });
        await etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(prefix + "a") });
        await etcd.PutAsync(prefix + "a", "a-recreated");
        var recreated = (await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix + "a") })).Kvs.Single();

        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest
        {
            Key = Utf8(prefix),
            RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)),
            StartRevision = 1,
            PrevKv = true,
        });
        var events = await watch.ReadEventsAsync(6);

        Assert.Equal(("a-recreated", 1L), (recreated.Value.ToStringUtf8(), recreated.Version));
        Assert.Equal(
            [
                (Event.Types.EventType.Put, "a", "a-one", 1L, (string?)null),
                (Event.Types.EventType.Put, "a", "a-two", 2L, "a-one"),
                (Event.Types.EventType.Put, "a", "a-two", 3L, "a-two"),
                (Event.Types.EventType.Put, "b", "b-one", 1L, null),
                (Event.Types.EventType.Delete, "a", "", 0L, "a-two"),
                (Event.Types.EventType.Put, "a", "a-recreated", 1L, null),
            ],
            events.Select(e => (e.Type, e.Kv.Key.ToStringUtf8()[prefix.Length..], e.Kv.Value.ToStringUtf8(), e.Kv.Version, e.PrevKv?.Value.ToStringUtf8())));
    }

    [Fact]
    public async Task A_txn_writing_an_existing_a_new_and_a_nested_key_binds_each_to_its_own_version()
    {
        var prefix = NewKey("txn-places");
        await etcd.PutAsync(prefix + "existing", "existing-one");
        await etcd.PutAsync(prefix + "existing", "existing-two");

        var txn = await etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Success =
            {
                WritePathTests.Put(prefix + "existing", "existing-three"),
                WritePathTests.Put(prefix + "new", "new-one"),
                new RequestOp { RequestTxn = new TxnRequest { Success = { WritePathTests.Put(prefix + "nested", "nested-one") } } },
            },
        });
        var read = await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)) });

        Assert.True(txn.Succeeded);
        Assert.Equal(
            [("existing", "existing-three", 3L), ("nested", "nested-one", 1L), ("new", "new-one", 1L)],
            read.Kvs.Select(kv => (kv.Key.ToStringUtf8()[prefix.Length..], kv.Value.ToStringUtf8(), kv.Version)));
        AssertBound(await etcd.StoredAsync(prefix + "nested"), "nested-one");
    }

    [Fact]
    public async Task Concurrent_writers_of_one_key_are_all_acknowledged_and_every_version_reads_back()
    {
        const int Writers = 4;
        const int WritesEach = 10;
        var key = NewKey("contended") + "k";
        var first = await etcd.PutAsync(key, "initial");

        var acknowledged = await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => WriteAsync(new KV.KVClient(etcd.NewProxyChannel()), w)));
        var final = (await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(key) })).Kvs.Single();
        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest { Key = Utf8(key), StartRevision = first.Header.Revision });
        var events = await watch.ReadEventsAsync(1 + (Writers * WritesEach));

        Assert.Equal(1 + (Writers * WritesEach), final.Version);
        Assert.Equal(Enumerable.Range(1, 1 + (Writers * WritesEach)).Select(v => (long)v), events.Select(e => e.Kv.Version));
        var written = acknowledged.SelectMany(a => a).ToDictionary(a => a.Revision, a => a.Value);
        Assert.Equal(Writers * WritesEach, written.Count);
        Assert.All(events.Skip(1), e => Assert.Equal(written[e.Kv.ModRevision], e.Kv.Value.ToStringUtf8()));

        async Task<List<(long Revision, string Value)>> WriteAsync(KV.KVClient client, int writer)
        {
            var done = new List<(long, string)>();
            for (var i = 0; i < WritesEach; i++)
            {
                var value = $"writer-{writer}-write-{i}";
                var put = await client.PutAsync(new PutRequest { Key = Utf8(key), Value = Utf8(value) });
                done.Add((put.Header.Revision, value));
            }

            return done;
        }
    }

    [Fact]
    public async Task Election_campaign_proclaim_leader_and_observe_work_and_store_bound_envelopes()
    {
        var name = NewKey("election") + "leader";
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var campaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = await GrantAsync(), Value = Utf8("campaigned") }, deadline: DateTime.UtcNow + Deadline);
        var storedAfterCampaign = await etcd.StoredAsync(campaign.Leader.Key.ToStringUtf8());
        await election.ProclaimAsync(new ProclaimRequest { Leader = campaign.Leader, Value = Utf8("proclaimed") });
        var storedAfterProclaim = await etcd.StoredAsync(campaign.Leader.Key.ToStringUtf8());
        var leader = await election.LeaderAsync(new LeaderRequest { Name = Utf8(name) });
        using var observe = election.Observe(new LeaderRequest { Name = Utf8(name) }, deadline: DateTime.UtcNow + Deadline);
        Assert.True(await observe.ResponseStream.MoveNext(CancellationToken.None), "the observe stream ended");

        AssertBound(storedAfterCampaign, "campaigned");
        AssertBound(storedAfterProclaim, "proclaimed");
        Assert.Equal("proclaimed", leader.Kv.Value.ToStringUtf8());
        Assert.Equal(2, leader.Kv.Version);
        Assert.Equal("proclaimed", observe.ResponseStream.Current.Kv.Value.ToStringUtf8());
    }

    [Fact]
    public async Task Etcdctl_elect_campaigns_through_the_proxy_and_its_leader_value_reads_back()
    {
        // etcdctl elect is clientv3's concurrency.Election: a create_revision-guarded Txn under the prefix, then a
        // first-create Range and a Watch, all through the KV path.
        var name = NewKey("elect") + "e";
        await using var elect = EtcdctlTarget.Proxy(etcd.Shield, etcd.Pki).Start("elect", name, "etcdctl-proposal");
        await elect.WaitForStdOutAsync(line => line == "etcdctl-proposal", Deadline);
        var leader = await new Election.ElectionClient(etcd.ProxyChannel).LeaderAsync(new LeaderRequest { Name = Utf8(name) });
        var stored = await etcd.StoredAsync(leader.Kv.Key.ToStringUtf8());
        var listed = (await etcd.Shield.Etcdctl(etcd.Pki).RunAsync("get", "--prefix", name + "/")).EnsureSuccess();
        var resigned = await elect.TerminateAsync(Deadline);

        Assert.StartsWith(name + "/", leader.Kv.Key.ToStringUtf8(), StringComparison.Ordinal);
        Assert.Equal("etcdctl-proposal", leader.Kv.Value.ToStringUtf8());
        AssertBound(stored, "etcdctl-proposal");
        Assert.Equal([leader.Kv.Key.ToStringUtf8(), "etcdctl-proposal"], listed.StdOutLines);
        Assert.False(resigned.TimedOut, resigned.ToString());
    }

    [Fact]
    public async Task The_lock_service_holds_a_bound_owner_key_that_reads_as_empty()
    {
        var name = NewKey("lock") + "mutex";
        var locks = new LockClient(etcd.ProxyChannel);
        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = await GrantAsync() }, deadline: DateTime.UtcNow + Deadline);
        var stored = await etcd.StoredAsync(held.Key.ToStringUtf8());
        var owner = (await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = held.Key })).Kvs.Single();
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        AssertBound(stored, "");
        Assert.Equal(ByteString.Empty, owner.Value);
        Assert.Null(await etcd.StoredAsync(held.Key.ToStringUtf8()));
    }

    private const string PythonScript = """
        # python-etcd3 (Debian's python3-etcd3) replace() and lock() under a rollback-protected prefix.
        # Usage: script HOST PORT CA_FILE CERT_FILE KEY_FILE PREFIX; prints one JSON object; non-zero exit on failure.
        import json
        import sys

        import etcd3
        import etcd3.locks

        host, port, ca, cert, key, prefix = sys.argv[1:7]
        client = etcd3.client(host=host, port=int(port), ca_cert=ca, cert_cert=cert, cert_key=key, timeout=10)
        seen = {}

        client.put(prefix + "r", "one")
        seen["replaced"] = client.replace(prefix + "r", "one", "two")
        seen["stale_replace"] = client.replace(prefix + "r", "one", "three")
        seen["after_replace"] = client.get(prefix + "r")[0].decode()


        class ProtectedLock(etcd3.locks.Lock):
            lock_prefix = prefix + "locks/"


        lock = ProtectedLock("m", ttl=60, etcd_client=client)
        seen["acquired"] = lock.acquire(timeout=10)
        seen["is_acquired"] = lock.is_acquired()
        seen["lock_key"] = lock.key
        seen["released"] = lock.release()
        seen["after_release"] = client.get(lock.key)[0]
        print(json.dumps(seen, separators=(",", ":")))
        """;

    [Fact]
    public async Task Python_etcd3_replace_and_lock_work_under_the_protected_prefix()
    {
        var prefix = NewKey("python");
        var client = ShieldServer.DefaultClient(etcd.Pki);
        var url = new Uri(etcd.Shield.ClientUrl);
        var script = Path.Combine(etcd.Pki.Directory, $"rollback_{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(script, PythonScript);

        var run = await ExternalCommand.RunAsync(
            Python,
            [script, url.Host, url.Port.ToString(CultureInfo.InvariantCulture), etcd.Pki.CaFile, client.CertFile, client.KeyFile, prefix],
            environment: new Dictionary<string, string?> { ["PYTHONDONTWRITEBYTECODE"] = "1", ["PYTHONPATH"] = null, ["PYTHONHOME"] = null });

        Assert.True(run.Succeeded, run.ToString());
        using var seen = JsonDocument.Parse(run.StdOut);
        var root = seen.RootElement;
        Assert.True(root.GetProperty("replaced").GetBoolean());
        Assert.False(root.GetProperty("stale_replace").GetBoolean());
        Assert.Equal("two", root.GetProperty("after_replace").GetString());
        Assert.True(root.GetProperty("acquired").GetBoolean());
        Assert.True(root.GetProperty("is_acquired").GetBoolean());
        Assert.Equal(prefix + "locks/m", root.GetProperty("lock_key").GetString());
        Assert.True(root.GetProperty("released").GetBoolean());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("after_release").ValueKind);
        AssertBound(await etcd.StoredAsync(prefix + "r"), "two");
    }

    [Fact]
    public async Task Outside_the_protected_prefix_values_stay_version_one_and_a_restored_envelope_is_served_as_before()
    {
        var key = UnprotectedPrefix + ShieldedEtcd.NewPrefix("scope")[1..] + "cm";
        await etcd.PutAsync(key, "configmap-one");
        var saved = (await etcd.StoredAsync(key))!;
        await etcd.PutAsync(key, "configmap-two");

        await etcd.PlantAsync(key, saved);

        AssertSealed(saved, "configmap-one");
        Assert.Equal("configmap-one", await etcd.GetAsync(key));
    }

    [Fact]
    public async Task A_first_version_envelope_restored_as_a_recreation_of_a_deleted_key_is_served()
    {
        // The residual risk docs/threat-model.md names: a deleted key re-created from its old first-version
        // envelope is indistinguishable from a genuine create without an anchor outside etcd.
        var key = NewKey("recreation") + "k";
        await etcd.PutAsync(key, "first-version");
        var saved = (await etcd.StoredAsync(key))!;
        await etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(key) });

        await etcd.PlantAsync(key, saved);

        Assert.Equal("first-version", await etcd.GetAsync(key));
    }

    /// <summary>A key prefix of the test's own under the protected prefix: <c>/registry/secrets/name-1a2b3c4d/</c>.</summary>
    private static string NewKey(string name) => ProtectedPrefix + ShieldedEtcd.NewPrefix(name)[1..];

    /// <summary>The stored bytes are an envelope version 2 of <paramref name="plaintext"/>, which is nowhere inside.</summary>
    internal static void AssertBound(ByteString? stored, string plaintext)
    {
        Assert.NotNull(stored);
        var bytes = stored.ToByteArray();
        Assert.True(bytes.AsSpan().StartsWith(BoundMagic), $"stored value does not start with ESH 0x02: {Convert.ToHexString(bytes.AsSpan(0, Math.Min(8, bytes.Length)))}");
        var plain = Encoding.UTF8.GetBytes(plaintext);
        Assert.True(bytes.Length > plain.Length + 16, "the envelope is too short to hold the plaintext and a tag");
        if (plain.Length > 0)
        {
            Assert.False(bytes.AsSpan().IndexOf(plain) >= 0, "the stored envelope contains the plaintext");
        }
    }

    /// <summary>DATA_LOSS naming the key, saying it was rolled back, and showing none of the values.</summary>
    internal static void AssertRolledBack(RpcException refusal, string key, params string[] secrets)
    {
        AssertDataLoss(refusal, key, secrets);
        Assert.Contains("rolled back", refusal.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>What etcd stores for <paramref name="key"/>, read as a storage operator would: etcdctl straight at etcd.</summary>
    private async Task<ByteString> RawByEtcdctlAsync(string key)
    {
        var get = (await new Etcdctl(etcd.Etcd.ClientUrl).RunAsync("get", key, "-w", "json")).EnsureSuccess();
        using var document = JsonDocument.Parse(get.StdOut);
        var kv = document.RootElement.GetProperty("kvs").EnumerateArray().Single();
        return ByteString.FromBase64(kv.GetProperty("value").GetString()!);
    }

    private async Task<long> GrantAsync() =>
        (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

    private static RequestOp Put(ByteString key, string value) =>
        new() { RequestPut = new PutRequest { Key = key, Value = Utf8(value) } };

    /// <summary>kube-apiserver's write: If(mod_revision(k) == m) Then op Else Get(k); m = 0 creates.</summary>
    private static TxnRequest Guarded(ByteString key, long modRevision, RequestOp then) => new()
    {
        Compare = { new Compare { Key = key, Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = modRevision } },
        Success = { then },
        Failure = { new RequestOp { RequestRange = new RangeRequest { Key = key } } },
    };

    /// <summary>An etcd of its own (a watch from revision 1 sees only this class's history) behind a proxy that
    /// encrypts <c>/registry/</c> and protects <c>/registry/secrets/</c> against rollback.</summary>
    public sealed class ProtectingProxy : ShieldedEtcd
    {
        protected override bool OwnsEtcd => true;

        protected override IReadOnlyList<string> ShieldFlags =>
            ["--encrypt-prefix", "/registry/", "--rollback-protection-prefix", ProtectedPrefix];
    }
}

/// <summary>
/// <c>etcdshield migrate --rollback-protection-prefix</c>: values sealed before the flag (envelope version 1) are
/// refused by a protected proxy (unless opened with <c>--legacy-unbound-prefix</c>) until migrate re-seals them in
/// version 2; a version 2 value restored from an older version is reported as failed and left as it is.
/// </summary>
public sealed class RollbackProtectionMigrateTests : IDisposable
{
    private const string ProtectedPrefix = RollbackProtectionTests.ProtectedPrefix;

    private readonly TestPki _pki = new();
    private readonly string _keys = Directory.CreateTempSubdirectory("etcdshield-rollback-").FullName;

    public void Dispose()
    {
        _pki.Dispose();
        Directory.Delete(_keys, recursive: true);
    }

    [Fact]
    public async Task Migrate_reseals_version_one_values_under_the_prefix_so_a_protected_proxy_reads_them()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        using var direct = GrpcChannels.ToEtcd(etcd);
        var kek = ShieldServer.WriteDevelopmentKey(_keys);
        await using (var unprotected = await StartAsync(etcd, kek))
        {
            using var channel = GrpcChannels.ToProxy(unprotected, _pki);
            var kv = new KV.KVClient(channel);
            await PutAsync(kv, ProtectedPrefix + "a", "a-before-the-flag-one");
            await PutAsync(kv, ProtectedPrefix + "a", "a-before-the-flag-two");
            await PutAsync(kv, ProtectedPrefix + "b", "b-before-the-flag");
            await PutAsync(kv, RollbackProtectionTests.UnprotectedPrefix + "c", "c-outside");
        }

        var before = await StoredAsync(direct);
        RpcException unbound;
        string legacyRead;
        await using (var protectedProxy = await StartAsync(etcd, kek, "--rollback-protection-prefix", ProtectedPrefix))
        {
            using var channel = GrpcChannels.ToProxy(protectedProxy, _pki);
            unbound = await Assert.ThrowsAsync<RpcException>(() => new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = Utf8(ProtectedPrefix + "a") }).ResponseAsync);
        }

        await using (var window = await StartAsync(etcd, kek, "--rollback-protection-prefix", ProtectedPrefix, "--legacy-unbound-prefix", ProtectedPrefix))
        {
            using var channel = GrpcChannels.ToProxy(window, _pki);
            legacyRead = (await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = Utf8(ProtectedPrefix + "a") })).Kvs.Single().Value.ToStringUtf8();
        }

        var migrate = await MigrateAsync(etcd, kek);
        var migrated = await StoredAsync(direct);
        var again = await MigrateAsync(etcd, kek);
        var afterAgain = await StoredAsync(direct);

        Assert.All(before.Values, v => Assert.True(v.Value.Span.StartsWith(EnvelopeMagic), "written before the flag, so version 1"));
        AssertDataLoss(unbound, ProtectedPrefix + "a", "a-before-the-flag-two");
        Assert.Contains("not bound", unbound.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("a-before-the-flag-two", legacyRead);
        Assert.True(migrate.Succeeded, migrate.ToString());
        Assert.DoesNotContain("before-the-flag", migrate.StdOut + migrate.StdErr, StringComparison.Ordinal);
        RollbackProtectionTests.AssertBound(migrated[ProtectedPrefix + "a"].Value, "a-before-the-flag-two");
        RollbackProtectionTests.AssertBound(migrated[ProtectedPrefix + "b"].Value, "b-before-the-flag");
        Assert.Equal(before[RollbackProtectionTests.UnprotectedPrefix + "c"], migrated[RollbackProtectionTests.UnprotectedPrefix + "c"]);
        Assert.True(again.Succeeded, again.ToString());
        Assert.Equal(migrated, afterAgain);

        await using var after = await StartAsync(etcd, kek, "--rollback-protection-prefix", ProtectedPrefix);
        using var afterChannel = GrpcChannels.ToProxy(after, _pki);
        var read = await new KV.KVClient(afterChannel).RangeAsync(new RangeRequest { Key = Utf8("/registry/"), RangeEnd = Utf8("/registry0") });
        Assert.Equal(
            [(RollbackProtectionTests.UnprotectedPrefix + "c", "c-outside"), (ProtectedPrefix + "a", "a-before-the-flag-two"), (ProtectedPrefix + "b", "b-before-the-flag")],
            read.Kvs.Select(kv => (kv.Key.ToStringUtf8(), kv.Value.ToStringUtf8())));
    }

    [Fact]
    public async Task Migrate_reports_a_restored_version_two_value_as_failed_and_leaves_it_as_it_is()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        using var direct = GrpcChannels.ToEtcd(etcd);
        var directKv = new KV.KVClient(direct);
        var kek = ShieldServer.WriteDevelopmentKey(_keys);
        var restoredKey = ProtectedPrefix + "restored";
        await using (var unprotected = await StartAsync(etcd, kek))
        {
            using var channel = GrpcChannels.ToProxy(unprotected, _pki);
            await PutAsync(new KV.KVClient(channel), ProtectedPrefix + "unbound", "unbound-value");
        }

        await using (var protectedProxy = await StartAsync(etcd, kek, "--rollback-protection-prefix", ProtectedPrefix))
        {
            using var channel = GrpcChannels.ToProxy(protectedProxy, _pki);
            var kv = new KV.KVClient(channel);
            await PutAsync(kv, restoredKey, "older-password");
            var saved = (await directKv.RangeAsync(new RangeRequest { Key = Utf8(restoredKey) })).Kvs.Single().Value;
            await PutAsync(kv, restoredKey, "newer-password");
            await directKv.PutAsync(new PutRequest { Key = Utf8(restoredKey), Value = saved });
        }

        var planted = (await StoredAsync(direct))[restoredKey];
        var migrate = await MigrateAsync(etcd, kek);
        var stored = await StoredAsync(direct);

        Assert.Equal(1, migrate.ExitCode);
        Assert.Contains(restoredKey, migrate.StdOut, StringComparison.Ordinal);
        Assert.Contains("failed (cannot decrypt, left as they are): 1", migrate.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("password", migrate.StdOut + migrate.StdErr, StringComparison.Ordinal);
        Assert.Equal(planted, stored[restoredKey]);
        RollbackProtectionTests.AssertBound(stored[ProtectedPrefix + "unbound"].Value, "unbound-value");
    }

    [Fact]
    public async Task A_protected_prefix_outside_every_encrypted_prefix_is_a_flag_error()
    {
        var kek = ShieldServer.WriteDevelopmentKey(_keys);

        var migrate = await ExternalCommand.RunAsync(
            "dotnet",
            [ShieldBinary, "migrate", "--upstream-endpoints", "http://127.0.0.1:1", "--encryption-key-file", kek, "--encrypt-prefix", "/registry/", "--rollback-protection-prefix", "/elsewhere/"],
            timeout: TimeSpan.FromMinutes(1));

        Assert.Equal(2, migrate.ExitCode);
        Assert.Contains("/elsewhere/", migrate.StdErr, StringComparison.Ordinal);
    }

    private static string ShieldBinary => Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll");

    private static Task<CommandResult> MigrateAsync(EtcdProcess etcd, string kek) =>
        ExternalCommand.RunAsync(
            "dotnet",
            [ShieldBinary, "migrate", "--upstream-endpoints", etcd.ClientUrl, "--encryption-key-file", kek, "--encrypt-prefix", "/registry/", "--rollback-protection-prefix", ProtectedPrefix],
            timeout: TimeSpan.FromMinutes(1));

    private Task<ShieldServer> StartAsync(EtcdProcess etcd, string kek, params string[] flags) =>
        ShieldServer.StartAsync(_pki, etcd.ClientUrl, flags: ["--encryption-key-file", kek, "--encrypt-prefix", "/registry/", .. flags]);

    private static async Task PutAsync(KV.KVClient kv, string key, string value) =>
        await kv.PutAsync(new PutRequest { Key = Utf8(key), Value = Utf8(value) });

    /// <summary>Every key under /registry/ with what etcd stores for it, read around the proxy.</summary>
    private static async Task<Dictionary<string, KeyValue>> StoredAsync(Grpc.Net.Client.GrpcChannel direct)
    {
        var range = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = Utf8("/registry/"), RangeEnd = Utf8("/registry0") });
        return range.Kvs.ToDictionary(kv => kv.Key.ToStringUtf8(), kv => kv);
    }
}
