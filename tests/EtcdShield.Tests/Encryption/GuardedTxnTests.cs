using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Tests.Relay;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// Value-compare txns through the Txn handler against the in-memory etcd, with other clients' writes landing
/// between the proxy's read and its guarded commit: the guards catch every change that could alter the outcome,
/// the proxy decides again, and a key that never stops changing ends in ABORTED.
/// </summary>
public sealed class GuardedTxnTests : IDisposable
{
    private readonly ValueHandlerBed _bed = new();

    public GuardedTxnTests() => _bed.Clock.PausesAllowed = true;

    private InMemoryEtcd Etcd => _bed.Etcd;

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task A_write_between_the_read_and_the_commit_is_caught_and_the_txn_decided_again_on_the_new_value()
    {
        var read = _bed.Store("/k", "v");
        // Another client changes /k right after the proxy has read it.
        Etcd.ThenNext("KV/Txn", _ => _bed.Store("/k", "changed"));

        var pending = TxnAsync(SwapTxn("/k", "v", "mine"));
        var pause = await _bed.PassPauseAsync(pending);
        var response = await pending;

        // etcd would have compared "changed" with "v" at commit time: the failure branch, and /k keeps the other write.
        Assert.False(response.Succeeded);
        Assert.Equal("changed", _bed.Stored("/k"));
        var txns = Etcd.SentTo<TxnRequest>("KV/Txn");
        Assert.Equal(4, txns.Count);
        // The first commit was guarded on /k's mod_revision as read, which the other write moved.
        Assert.Equal(ModEquals("/k", read), Assert.Single(txns[1].Compare));
        Assert.DoesNotContain(txns[1].Success[0].RequestTxn.Compare, c => c.Target == CompareTarget.Value);
        Assert.InRange(pause, GuardedTxn.Pause(1, 0.0), GuardedTxn.Pause(1, 1.0));
        Assert.Equal(1, _bed.GuardRetries.GetMeasurementSnapshot().EvaluateAsCounter());
        Assert.Empty(_bed.GuardsExhausted.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task Each_retry_is_a_span_beneath_the_request_numbered_by_its_attempt()
    {
        using var spans = new CollectedSpans(EncryptionTraces.SourceName);
        using var request = new System.Diagnostics.Activity("request").Start();
        _bed.Store("/k", "v");
        Etcd.ThenNext("KV/Txn", _ => _bed.Store("/k", "changed"));
        Etcd.ThenNext("KV/Txn", _ => { });
        Etcd.ThenNext("KV/Txn", _ => _bed.Store("/k", "v"));

        var pending = TxnAsync(SwapTxn("/k", "v", "mine"));
        await _bed.PassPauseAsync(pending);
        await _bed.PassPauseAsync(pending);
        await pending;

        var retries = spans.OfTrace(request.TraceId);
        Assert.Equal([2, 3], retries.Select(s => s.GetTagItem("etcdshield.attempt")));
        Assert.All(retries, s => Assert.Equal(("txn.guard_retry", request.SpanId), (s.DisplayName, s.ParentSpanId)));
    }

    [Fact]
    public async Task A_write_of_the_same_plaintext_in_between_still_costs_a_retry_and_then_the_swap_succeeds()
    {
        _bed.Store("/k", "v");
        Etcd.ThenNext("KV/Txn", _ => _bed.Store("/k", "v"));

        var pending = TxnAsync(SwapTxn("/k", "v", "mine"));
        await _bed.PassPauseAsync(pending);
        var response = await pending;

        Assert.True(response.Succeeded);
        Assert.Equal("mine", _bed.Stored("/k"));
        Assert.Equal(4, Etcd.SentTo<TxnRequest>("KV/Txn").Count);
    }

    [Fact]
    public async Task Deleting_the_only_key_that_failed_a_range_compare_is_caught_by_its_witness_guard()
    {
        // LESS "c" over /r/: /r/2 = "d" makes it false, and is the witness pinned by the guard.
        _bed.Store("/r/1", "b");
        var witness = _bed.Store("/r/2", "d");
        Etcd.ThenNext("KV/Txn", store => store.Delete("/r/2"));
        var txn = new TxnRequest
        {
            Compare = { ValueCompare("/r/", "/r0", CompareResult.Less, "c") },
            Success = { PutOp("/done", "less") },
            Failure = { PutOp("/done", "not less") },
        };

        var pending = TxnAsync(txn);
        await _bed.PassPauseAsync(pending);
        var response = await pending;

        // Without /r/2 every key is below "c": etcd would take the success branch, and so does the proxy.
        Assert.True(response.Succeeded);
        Assert.Equal("less", _bed.Stored("/done"));
        var firstCommit = Etcd.SentTo<TxnRequest>("KV/Txn")[1];
        Assert.Contains(ModEquals("/r/2", witness), firstCommit.Compare);
        Assert.Contains(
            new Compare { Key = Utf8("/r/"), RangeEnd = Utf8("/r0"), Target = CompareTarget.Mod, Result = CompareResult.Less, ModRevision = witness + 1 },
            firstCommit.Compare);
    }

    [Fact]
    public async Task Emptying_a_range_that_held_a_compare_makes_it_false_as_etcd_would()
    {
        _bed.Store("/r/1", "b");
        Etcd.ThenNext("KV/Txn", store => store.Delete("/r/1"));
        var pending = TxnAsync(RangeGreaterThanA());
        await _bed.PassPauseAsync(pending);
        var response = await pending;

        Assert.False(response.Succeeded);
        Assert.Equal("not greater", _bed.Stored("/done"));
    }

    [Fact]
    public async Task A_new_key_in_a_compared_range_is_caught_by_the_range_guard()
    {
        _bed.Store("/r/1", "b");
        Etcd.ThenNext("KV/Txn", _ => _bed.Store("/r/0", "a"));
        var pending = TxnAsync(RangeGreaterThanA());
        await _bed.PassPauseAsync(pending);
        var response = await pending;

        // "/r/0" = "a" is not greater than "a".
        Assert.False(response.Succeeded);
        Assert.Equal("not greater", _bed.Stored("/done"));
    }

    [Fact]
    public async Task A_compared_key_created_between_the_read_and_the_commit_is_caught()
    {
        Etcd.ThenNext("KV/Txn", _ => _bed.Store("/k", "v"));

        var pending = TxnAsync(SwapTxn("/k", "v", "mine"));
        await _bed.PassPauseAsync(pending);
        var response = await pending;

        // Read missing, a value compare is false; but /k = "v" was there at commit time, as etcd would have seen.
        Assert.True(response.Succeeded);
        Assert.Equal("mine", _bed.Stored("/k"));
        Assert.Equal(ModEquals("/k", 0), Etcd.SentTo<TxnRequest>("KV/Txn")[1].Compare.Single());
    }

    [Fact]
    public async Task A_call_cancelled_during_a_pause_stops_retrying_and_sends_nothing_more()
    {
        _bed.Store("/k", "v");
        Etcd.ThenNext("KV/Txn", _ => _bed.Store("/k", "changed"));
        using var shutdown = new CancellationTokenSource();

        var pending = _bed.CallAsync<TxnResponse>(_bed.Txn, "KV/Txn", SwapTxn("/k", "v", "mine"), shutdown.Token);
        await _bed.Clock.Timers.ReadAsync();
        await shutdown.CancelAsync();

        // The relay maps a cancelled call to its status; the handler only has to stop.
        await Assert.ThrowsAsync<TaskCanceledException>(() => pending);
        Assert.Equal(2, Etcd.SentTo<TxnRequest>("KV/Txn").Count);
        Assert.Equal("changed", _bed.Stored("/k"));
    }

    [Fact]
    public async Task A_compared_key_that_never_stops_changing_costs_ten_attempts_then_aborted()
    {
        _bed.Store("/k", "v");
        // After every read (a txn without compares) another client rewrites /k with the same plaintext.
        Etcd.OnEvery("KV/Txn", async (request, next, _) =>
        {
            var answer = await next(request);
            if (((TxnRequest)request).Compare.Count == 0)
            {
                _bed.Store("/k", "v");
            }

            return answer;
        });

        var pending = TxnAsync(SwapTxn("/k", "v", "mine"));
        var pauses = new List<TimeSpan>();
        for (var i = 1; i < GuardedTxn.MaxAttempts; i++)
        {
            pauses.Add(await _bed.PassPauseAsync(pending));
        }

        // No tenth pause: the last attempt ends the call.
        Assert.Same(pending, await Task.WhenAny(pending, _bed.Clock.Timers.ReadAsync().AsTask()));
        var refusal = await Assert.ThrowsAsync<RpcException>(() => pending);

        Assert.Equal(StatusCode.Aborted, refusal.StatusCode);
        Assert.Equal("etcdshield: compared keys kept changing, retry", refusal.Status.Detail);
        Assert.Equal("v", _bed.Stored("/k"));
        Assert.Equal(2 * GuardedTxn.MaxAttempts, Etcd.SentTo<TxnRequest>("KV/Txn").Count);
        Assert.All(pauses.Select((pause, i) => (pause, attempt: i + 1)), p => Assert.InRange(p.pause, GuardedTxn.Pause(p.attempt, 0.0), GuardedTxn.Pause(p.attempt, 1.0)));
        Assert.Equal(GuardedTxn.MaxAttempts - 1, _bed.GuardRetries.GetMeasurementSnapshot().EvaluateAsCounter());
        Assert.Equal(1, _bed.GuardsExhausted.GetMeasurementSnapshot().EvaluateAsCounter());
        var warning = Assert.Single(_bed.Logs.GetSnapshot(), r => r.Category == typeof(GuardedTxn).FullName && r.Id.Name == "TxnGuardExhausted");
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.DoesNotContain("/k", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pauses_grow_from_the_first_to_the_cap_and_are_drawn_between_half_their_ceiling_and_it()
    {
        Assert.Equal(GuardedTxn.FirstPause, GuardedTxn.Pause(1, 1.0));
        Assert.Equal(GuardedTxn.FirstPause * 2, GuardedTxn.Pause(2, 1.0));
        Assert.Equal(GuardedTxn.MaxPause, GuardedTxn.Pause(GuardedTxn.MaxAttempts, 1.0));
        Assert.Equal(GuardedTxn.MaxPause, GuardedTxn.Pause(1000, 1.0));
        Assert.Equal(GuardedTxn.Pause(5, 1.0) / 2, GuardedTxn.Pause(5, 0.0));
        Assert.Equal(GuardedTxn.Pause(4, 1.0) * 3 / 4, GuardedTxn.Pause(4, 0.5));
    }

    [Fact]
    public async Task More_compared_ranges_than_etcd_takes_guards_for_are_refused_without_reading()
    {
        // 40 compares on distinct keys, and two nested txns of 60 more each: within etcd's budget for the txn
        // itself (the nested ones get 128 - 40), but 160 compared keys need more guards than etcd takes.
        var txn = new TxnRequest();
        txn.Compare.Add(Enumerable.Range(0, 40).Select(i => ValueCompare($"/k/top/{i}", "", CompareResult.Equal, "v")));
        foreach (var branch in new[] { "a", "b" })
        {
            var nested = new TxnRequest();
            nested.Compare.Add(Enumerable.Range(0, 60).Select(i => ValueCompare($"/k/{branch}/{i}", "", CompareResult.Equal, "v")));
            txn.Success.Add(new RequestOp { RequestTxn = nested });
        }

        Assert.True(TxnRequestCheck.FitsOpBudget(txn, MaxTxnOps));

        var refusal = await Assert.ThrowsAsync<RpcException>(() => TxnAsync(txn));

        Assert.Equal(StatusCode.InvalidArgument, refusal.StatusCode);
        Assert.Equal(
            "etcdshield: too many operations in txn request once its value compares are guarded (160 guard compares; etcd allows --max-txn-ops 128 for the txn and its guards)",
            refusal.Status.Detail);
        Assert.Empty(Etcd.Requests);
    }

    private Task<TxnResponse> TxnAsync(TxnRequest txn) => _bed.CallAsync<TxnResponse>(_bed.Txn, "KV/Txn", txn);

    /// <summary>Whether every value under /r/ is greater than "a", recorded in /done either way.</summary>
    private static TxnRequest RangeGreaterThanA() => new()
    {
        Compare = { ValueCompare("/r/", "/r0", CompareResult.Greater, "a") },
        Success = { PutOp("/done", "greater") },
        Failure = { PutOp("/done", "not greater") },
    };

    private static TxnRequest SwapTxn(string key, string expected, string value) => new()
    {
        Compare = { ValueCompare(key, "", CompareResult.Equal, expected) },
        Success = { PutOp(key, value) },
    };

    internal static RequestOp PutOp(string key, string value) =>
        new() { RequestPut = new PutRequest { Key = Utf8(key), Value = Utf8(value) } };

    internal static Compare ValueCompare(string key, string rangeEnd, CompareResult result, string value) =>
        new() { Key = Utf8(key), RangeEnd = Utf8(rangeEnd), Target = CompareTarget.Value, Result = result, Value = Utf8(value) };

    private static Compare ModEquals(string key, long revision) =>
        new() { Key = ByteString.CopyFromUtf8(key), Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = revision };
}
