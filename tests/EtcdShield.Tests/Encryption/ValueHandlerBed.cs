using EtcdShield.Concurrency;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Relay;
using EtcdShield.Tests.Keys;
using EtcdShield.Tests.Relay;
using Google.Protobuf;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// The value handlers built as <see cref="ValueRoutes"/> builds them, with a real <see cref="ValueProtector"/> over a
/// fake KEK, in front of an <see cref="InMemoryEtcd"/>; values are encrypted under every key. Guard pauses run on a
/// fake clock of their own that the test moves (<see cref="PassPauseAsync"/>).
/// </summary>
internal sealed class ValueHandlerBed : IDisposable
{
    /// <summary>Small, so the request-limit tests need no large values; the protector's value limit is the same, as in the proxy.</summary>
    public const int MaxRequestBytes = 4096;

    public const int MaxTxnOps = 128;

    private readonly FakeKeyEncryptionKey _kek = new("fake:handlers");
    private readonly IMeterFactory _meters = TestMeterFactory.Create();
    private readonly DataKeyManager _keys;

    /// <param name="rollbackProtected">A prefix given to --rollback-protection-prefix, if any.</param>
    public ValueHandlerBed(string? rollbackProtected = null)
    {
        var metrics = new EncryptionMetrics(_meters);
        _keys = new DataKeyManager(new KeyRing(_kek), DataKeyOptions.Default, new FakeTimeProvider(), new KeyMetrics(_meters), new FakeLogger<DataKeyManager>(Logs));
        Protector = new ValueProtector(
            EncryptionOptions.FromUtf8(maxValueBytes: MaxRequestBytes, rollbackProtectedPrefixes: rollbackProtected is null ? null : [rollbackProtected]), _keys, metrics, new FakeLogger<ValueProtector>(Logs));
        GuardRetries = new MetricCollector<long>(_meters, EncryptionMetrics.MeterName, "etcdshield.txn.guard_retries");
        GuardsExhausted = new MetricCollector<long>(_meters, EncryptionMetrics.MeterName, "etcdshield.txn.guard_exhausted");

        var opener = new KeyValueOpener(Protector);
        var ranges = new RangeValues(opener);
        var txnValues = new TxnValues(Protector, opener, ranges);
        var limit = new ValueRequestLimit(MaxRequestBytes);
        var guarded = new GuardedTxn(new ValueCompares(opener), MaxTxnOps, Clock, metrics, new FakeLogger<GuardedTxn>(Logs));
        Put = new PutHandler(txnValues, opener, limit, new BoundWrites(Protector, txnValues), guarded);
        Range = new RangeHandler(ranges);
        DeleteRange = new DeleteRangeHandler(opener);
        Txn = new TxnHandler(txnValues, guarded, limit, MaxTxnOps, new BoundWrites(Protector, txnValues));
        Watch = new WatchValueRewriter(opener);
        Campaign = new CampaignHandler(Protector, limit);
        Proclaim = new ProclaimHandler(Protector, limit);
        Leader = new LeaderHandler(opener);
        Observe = new ObserveValueRewriter(opener);
    }

    public InMemoryEtcd Etcd { get; } = new();

    public PauseClock Clock { get; } = new();

    public FakeLogCollector Logs { get; } = new();

    public ValueProtector Protector { get; }

    public MetricCollector<long> GuardRetries { get; }

    public MetricCollector<long> GuardsExhausted { get; }

    public IUnaryHandler Put { get; }

    public IUnaryHandler Range { get; }

    public IUnaryHandler DeleteRange { get; }

    public IUnaryHandler Txn { get; }

    public IStreamRewriter Watch { get; }

    public IUnaryHandler Campaign { get; }

    public IUnaryHandler Proclaim { get; }

    public IUnaryHandler Leader { get; }

    public IStreamRewriter Observe { get; }

    public static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    /// <summary>Sends <paramref name="request"/> through <paramref name="handler"/> as a client call of <paramref name="method"/>.</summary>
    /// <param name="cancellationToken">The call's token, as the relay passes it (the client's, or the proxy's shutdown).</param>
    public async Task<TResponse> CallAsync<TResponse>(IUnaryHandler handler, string method, IMessage request, CancellationToken? cancellationToken = null)
        where TResponse : IMessage =>
        (TResponse)await handler.HandleAsync(request, Etcd.CallFor(method, cancellationToken: cancellationToken));

    /// <summary>What the proxy would store for <paramref name="plaintext"/> under <paramref name="key"/>.</summary>
    public ByteString Seal(string key, string plaintext) => Seal(Utf8(key), Utf8(plaintext));

    public ByteString Seal(ByteString key, ByteString plaintext) =>
        Protector.ProtectAsync(key, plaintext, null, CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public string Open(ByteString key, ByteString stored) =>
        Protector.UnprotectAsync(key, stored, default, CancellationToken.None).AsTask().GetAwaiter().GetResult().ToStringUtf8();

    /// <summary>What a proxy without rollback protection would store (a v1 envelope), under the same keys.</summary>
    public ByteString SealUnbound(string key, string plaintext) =>
        new ValueProtector(new EncryptionOptions(maxValueBytes: MaxRequestBytes), _keys, new EncryptionMetrics(_meters), new FakeLogger<ValueProtector>(Logs))
            .ProtectAsync(Utf8(key), Utf8(plaintext), null, CancellationToken.None).AsTask().GetAwaiter().GetResult();

    /// <summary>Writes a sealed value straight into etcd, as the proxy would have; returns the revision.</summary>
    public long Store(string key, string plaintext) => Etcd.Store.Put(key, Seal(key, plaintext));

    /// <summary>The plaintext etcd holds for <paramref name="key"/> now.</summary>
    public string Stored(string key) => Open(Utf8(key), Etcd.Store.Get(key)?.Value ?? throw new InvalidOperationException($"etcd has no key {key}"));

    /// <summary>
    /// Waits for the guard loop of <paramref name="call"/> to pause, lets the pause pass, and returns how long it was;
    /// fails if the call ends instead.
    /// </summary>
    public async Task<TimeSpan> PassPauseAsync(Task call)
    {
        var next = Clock.Timers.ReadAsync().AsTask();
        if (await Task.WhenAny(next, call) != next)
        {
            await call;
            Assert.Fail("the call was answered without pausing for another attempt");
        }

        var pause = await next;
        Clock.Advance(pause);
        return pause;
    }

    public void Dispose()
    {
        GuardRetries.Dispose();
        GuardsExhausted.Dispose();
        _keys.Dispose();
        _kek.Dispose();
        _meters.Dispose();
    }

    /// <summary>
    /// A fake clock that also says when a timer is started, so a test moves time only once the pause is waiting. Unless
    /// a test allows pauses, starting one fails the call, so an unexpected retry fails the test instead of hanging it.
    /// </summary>
    internal sealed class PauseClock : FakeTimeProvider
    {
        private readonly Channel<TimeSpan> _timers = Channel.CreateUnbounded<TimeSpan>();

        public ChannelReader<TimeSpan> Timers => _timers.Reader;

        public bool PausesAllowed { get; set; }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            if (!PausesAllowed)
            {
                throw new InvalidOperationException("the guard loop paused for another attempt, which this test does not expect");
            }

            var timer = base.CreateTimer(callback, state, dueTime, period);
            _timers.Writer.TryWrite(dueTime);
            return timer;
        }
    }
}
