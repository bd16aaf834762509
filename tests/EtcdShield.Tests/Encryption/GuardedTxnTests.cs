using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Tests.Keys;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// The guard-retry loop against a scripted etcd: every read answers the key at a fresh revision, and each
/// guarded commit fails as many times as the script says, as it does while a writer keeps changing the key.
/// </summary>
public sealed class GuardedTxnTests : IDisposable
{
    private readonly MetricRecorder _meters = new();
    private readonly PausingClock _clock = new();
    private readonly RecordingLogger<GuardedTxn> _logger = new();

    [Fact]
    public async Task A_compared_key_that_never_stops_changing_costs_ten_attempts_then_aborted()
    {
        var etcd = new ScriptedKv(guardFailures: int.MaxValue);

        var refusal = await Assert.ThrowsAsync<RpcException>(() => CommitAsync(etcd, ValueCompareTxn()));

        Assert.Equal(StatusCode.Aborted, refusal.StatusCode);
        Assert.Equal("etcdshield: compared keys kept changing, retry", refusal.Status.Detail);
        Assert.Equal(GuardedTxn.MaxAttempts, etcd.Reads);
        Assert.Equal(GuardedTxn.MaxAttempts, etcd.Commits);
        Assert.Equal(GuardedTxn.MaxAttempts - 1, _clock.Pauses.Count);
        Assert.All(_clock.Pauses.Select((pause, i) => (pause, i)), p => Assert.InRange(p.pause, GuardedTxn.Pause(p.i + 1, 0.0), GuardedTxn.Pause(p.i + 1, 1.0)));
        Assert.Equal(GuardedTxn.MaxAttempts - 1, _meters.Sum("etcdshield.txn.guard_retries"));
        Assert.Equal(1, _meters.Sum("etcdshield.txn.guard_exhausted"));
        Assert.Contains(_logger.Entries, e => e.EventId.Name == "TxnGuardExhausted" && !e.Message.Contains("/k", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_commit_that_loses_twice_is_answered_on_the_third_attempt()
    {
        var etcd = new ScriptedKv(guardFailures: 2);

        var response = await CommitAsync(etcd, ValueCompareTxn());

        Assert.True(response.Succeeded);
        Assert.Equal(3, etcd.Commits);
        Assert.Equal(2, _clock.Pauses.Count);
        Assert.Equal(2, _meters.Sum("etcdshield.txn.guard_retries"));
        Assert.Equal(0, _meters.Sum("etcdshield.txn.guard_exhausted"));
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
        var etcd = new ScriptedKv(guardFailures: 0);
        // 40 compares on distinct keys, and two nested txns of 60 more each: within etcd's budget for the txn
        // itself (the nested ones get 128 - 40), but 160 compared keys need more guards than etcd takes.
        var txn = new TxnRequest();
        txn.Compare.Add(Enumerable.Range(0, 40).Select(i => ValueEquals($"/k/top/{i}", "v")));
        foreach (var branch in new[] { "a", "b" })
        {
            var nested = new TxnRequest();
            nested.Compare.Add(Enumerable.Range(0, 60).Select(i => ValueEquals($"/k/{branch}/{i}", "v")));
            txn.Success.Add(new RequestOp { RequestTxn = nested });
        }

        Assert.True(TxnRequestCheck.FitsOpBudget(txn, 128));

        var refusal = await Assert.ThrowsAsync<RpcException>(() => CommitAsync(etcd, txn));

        Assert.Equal(StatusCode.InvalidArgument, refusal.StatusCode);
        Assert.StartsWith("etcdshield: too many operations in txn request", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, etcd.Reads + etcd.Commits);
    }

    public void Dispose() => _meters.Dispose();

    private async Task<TxnResponse> CommitAsync(ScriptedKv etcd, TxnRequest txn)
    {
        var guarded = new GuardedTxn(new ValueCompares(new KeyValueOpener(PassthroughValueProtector.Instance)), 128, _clock, _meters, _logger);
        return await guarded.CommitAsync(txn, txn.Clone(), new ValueRequestLimit(1_572_864), new KV.KVClient(etcd), new CallOptions());
    }

    private static TxnRequest ValueCompareTxn() => new()
    {
        Compare = { ValueEquals("/k", "v") },
        Success = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("/k"), Value = ByteString.CopyFromUtf8("w") } } },
    };

    private static Compare ValueEquals(string key, string value) =>
        new() { Key = ByteString.CopyFromUtf8(key), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = ByteString.CopyFromUtf8(value) };

    /// <summary>etcd's KV.Txn, scripted: reads (no compares) see "/k" = "v" at a new revision each time; guarded commits fail the first N times.</summary>
    private sealed class ScriptedKv(int guardFailures) : CallInvoker
    {
        private long _revision = 100;

        public int Reads { get; private set; }

        public int Commits { get; private set; }

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            var txn = Assert.IsType<TxnRequest>(request);
            _revision++;
            TxnResponse response;
            if (txn.Compare.Count == 0)
            {
                Reads++;
                response = new TxnResponse { Header = new ResponseHeader { Revision = _revision }, Succeeded = true };
                response.Responses.Add(txn.Success.Select(_ => new ResponseOp
                {
                    ResponseRange = new RangeResponse { Kvs = { new KeyValue { Key = ByteString.CopyFromUtf8("/k"), Value = ByteString.CopyFromUtf8("v"), ModRevision = _revision, Version = 1 } } },
                }));
            }
            else
            {
                Commits++;
                var succeeded = Commits > guardFailures;
                response = new TxnResponse { Header = new ResponseHeader { Revision = _revision }, Succeeded = succeeded };
                if (succeeded)
                {
                    response.Responses.Add(new ResponseOp { ResponseTxn = new TxnResponse { Succeeded = true } });
                }
            }

            return new AsyncUnaryCall<TResponse>(
                Task.FromResult((TResponse)(object)response), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();
    }

    /// <summary>A clock whose timers record the pause asked for and fire at once, so retries run without waiting.</summary>
    private sealed class PausingClock : TimeProvider
    {
        public List<TimeSpan> Pauses { get; } = [];

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            lock (Pauses)
            {
                Pauses.Add(dueTime);
            }

            ThreadPool.QueueUserWorkItem(_ => callback(state));
            return new FiredTimer();
        }

        private sealed class FiredTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => false;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
