using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;

namespace EtcdShield.Encryption;

/// <summary>
/// A txn with value compares, run as <see cref="ValueCompares"/> describes: read the compared keys, decide,
/// commit under guards. When a guard fails (a compared key moved in between) it is tried again after a short
/// random pause, at most <see cref="MaxAttempts"/> times; then the client gets ABORTED, as a client losing a
/// compare-and-swap race would retry itself. Each attempt reads and decrypts every compared range again, so
/// the bound is what keeps a writer hammering a compared key from making the proxy do that work without end.
/// </summary>
internal sealed partial class GuardedTxn
{
    /// <summary>Enough for ordinary contention (the pauses spread contending proxies apart); small enough that
    /// one request costs at most this many reads of its compared ranges.</summary>
    public const int MaxAttempts = 10;

    /// <summary>The pause before retry n is uniform between half of c and c, for c = min(<see cref="MaxPause"/>,
    /// FirstPause·2ⁿ⁻¹): random, so proxies retrying the same key drift apart, and never none at all.</summary>
    public static readonly TimeSpan FirstPause = TimeSpan.FromMilliseconds(2);

    public static readonly TimeSpan MaxPause = TimeSpan.FromMilliseconds(100);

    public const string ExhaustedMessage = "etcdshield: compared keys kept changing, retry";

    private readonly ValueCompares _compares;
    private readonly int _maxTxnOps;
    private readonly TimeProvider _time;
    private readonly EncryptionMetrics _metrics;
    private readonly ILogger _logger;

    public GuardedTxn(ValueCompares compares, int maxTxnOps, TimeProvider time, EncryptionMetrics metrics, ILogger<GuardedTxn> logger)
    {
        _compares = compares;
        _maxTxnOps = maxTxnOps;
        _time = time;
        _logger = logger;
        _metrics = metrics;
    }

    /// <summary>A txn sealed for one attempt, with the guards its sealing depends on (rollback-protected places).</summary>
    internal sealed record SealedAttempt(TxnRequest Sealed, IReadOnlyList<Compare> Guards);

    /// <summary>
    /// etcd's answer to <paramref name="request"/>, decided on plaintext; <paramref name="sealedTxn"/> is the same
    /// txn with its values sealed. The answer's values are still sealed.
    /// </summary>
    public Task<TxnResponse> CommitAsync(TxnRequest request, TxnRequest sealedTxn, ValueRequestLimit limit, KV.KVClient kv, CallOptions options) =>
        CommitAsync(request, _ => Task.FromResult(new SealedAttempt(sealedTxn, [])), limit, kv, options);

    /// <summary>
    /// Like the other overload, for a txn whose sealing depends on what etcd holds (<see cref="BoundWrites"/>):
    /// <paramref name="seal"/> is called for each attempt (numbered from 1) and its guards are added to the value
    /// compares' own.
    /// </summary>
    public async Task<TxnResponse> CommitAsync(TxnRequest request, Func<int, Task<SealedAttempt>> seal, ValueRequestLimit limit, KV.KVClient kv, CallOptions options)
    {
        var compared = ValueCompares.Compared(request);
        // Each compared range needs at least one guard compare, and etcd takes at most --max-txn-ops of them.
        if (compared.Count > _maxTxnOps)
        {
            throw TooManyGuards(compared.Count);
        }

        System.Diagnostics.Activity? retry = null;
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                var (sealedTxn, sealGuards) = await seal(attempt).ConfigureAwait(false);
                var snapshot = compared.Count > 0
                    ? await _compares.ReadAsync(compared, kv, options).ConfigureAwait(false)
                    : new ValueCompares.CompareSnapshot(0);
                var guarded = ValueCompares.Guarded(request, sealedTxn, snapshot);
                guarded.Compare.Add(sealGuards);
                if (!TxnRequestCheck.FitsOpBudget(guarded, _maxTxnOps))
                {
                    throw TooManyGuards(guarded.Compare.Count);
                }

                limit.CheckSealed(guarded);
                var outer = await kv.TxnAsync(guarded, options).ConfigureAwait(false);
                if (outer.Succeeded)
                {
                    var response = outer.Responses[0].ResponseTxn;
                    response.Header = outer.Header;
                    return response;
                }

                if (attempt == MaxAttempts)
                {
                    _metrics.GuardExhausted();
                    Log.TxnGuardExhausted(_logger, MaxAttempts);
                    throw new RpcException(new Status(StatusCode.Aborted, ExhaustedMessage));
                }

                _metrics.GuardRetried();
                // Each retry's span holds its pause, reads and commit; the one before ends first, so they are siblings.
                retry?.Dispose();
                retry = EncryptionTraces.StartGuardRetry(attempt + 1);
                await Task.Delay(Pause(attempt, Random.Shared.NextDouble()), _time, options.CancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            retry?.Dispose();
        }
    }

    /// <summary>The pause after failed attempt <paramref name="attempt"/>, for a uniform <paramref name="random"/> in [0, 1).</summary>
    internal static TimeSpan Pause(int attempt, double random)
    {
        var ceiling = Math.Min(MaxPause.Ticks, FirstPause.Ticks << Math.Min(attempt - 1, 20));
        return TimeSpan.FromTicks((ceiling / 2) + (long)(ceiling / 2 * random));
    }

    private RpcException TooManyGuards(int guards) => new(new Status(
        StatusCode.InvalidArgument,
        $"etcdshield: too many operations in txn request once its value compares are guarded ({guards} guard compares; etcd allows --max-txn-ops {_maxTxnOps} for the txn and its guards)"));

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.TxnGuardExhausted, EventName = nameof(EventIds.TxnGuardExhausted), Level = LogLevel.Warning,
            Message = "A txn's value-compared keys changed before each of {Attempts} commits; answered ABORTED")]
        public static partial void TxnGuardExhausted(ILogger logger, int attempts);
    }
}
