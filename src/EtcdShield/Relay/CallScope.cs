using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.ReadCache;
using EtcdShield.Streams;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// Everything a call needs besides its route, made once: the callers, the gate, the stream limits, etcd, and
/// where each call's ending is recorded. <see cref="Begin"/> opens one call's scope.
/// </summary>
internal sealed class CallScopes
{
    /// <param name="lifetime">When the host starts stopping, calls that may last indefinitely (watches, lease
    /// keep-alives, blocked Lock calls) are ended with UNAVAILABLE, as etcd ends them when it stops, so that clients reconnect
    /// elsewhere at once and shutdown does not wait for them until the host's timeout.</param>
    public CallScopes(
        UpstreamChannel upstream,
        SerializableReadCache readCache,
        CallerLookup callers,
        AccessGate gate,
        OpenStreams streams,
        RelayMetrics metrics,
        AuditLog audit,
        TimeProvider time,
        ILogger<RequestRelay> logger,
        RelayTraces traces,
        IHostApplicationLifetime? lifetime = null)
        : this(readCache.Wrap(upstream.Invoker), callers, gate, streams, metrics, audit, time, logger, lifetime?.ApplicationStopping ?? CancellationToken.None, traces)
    {
    }

    /// <summary>For the unit tests: any <paramref name="upstream"/> (an in-memory etcd) and any stopping signal.</summary>
    internal CallScopes(CallInvoker upstream, CallerLookup callers, AccessGate gate, OpenStreams streams, RelayMetrics metrics, AuditLog audit, TimeProvider time, ILogger logger, CancellationToken stopping, RelayTraces? traces = null)
    {
        Traces = traces;
        Upstream = upstream;
        Callers = callers;
        Gate = gate;
        Streams = streams;
        Metrics = metrics;
        Audit = audit;
        Time = time;
        Logger = logger;
        Stopping = stopping;
    }

    internal CallInvoker Upstream { get; }

    internal CallerLookup Callers { get; }

    internal AccessGate Gate { get; }

    internal OpenStreams Streams { get; }

    internal RelayMetrics Metrics { get; }

    internal AuditLog Audit { get; }

    internal TimeProvider Time { get; }

    internal ILogger Logger { get; }

    internal CancellationToken Stopping { get; }

    /// <summary>The request spans; null (the unit tests) traces nothing.</summary>
    internal RelayTraces? Traces { get; }

    /// <summary>Step 1 of every call: who is calling, the clock, and a cancellation that also fires on shutdown.</summary>
    public CallScope Begin(RelayedMethod method, ServerCallContext context) => new(this, method, context);
}

/// <summary>
/// One call from accept to answer, of whatever kind: who is calling, the decisions on it, and how it ended. Each
/// step of <see cref="RequestRelay"/> is one call here, and the ending (status, metrics, audit record) is written
/// once, in <see cref="Dispose"/>.
/// </summary>
internal sealed class CallScope : IDisposable
{
    private readonly CallScopes _shared;
    private readonly long _started;
    private readonly CancellationTokenSource _stop;

    // The request's span, null when tracing is off.
    private readonly System.Diagnostics.Activity? _span;

    // The key ranges the gate found in the request, kept for the audit record when there is one, and counted for a recorded span.
    private readonly List<KeyAccess>? _accesses;
    private RpcException? _failure;

    internal CallScope(CallScopes shared, RelayedMethod method, ServerCallContext context)
    {
        _shared = shared;
        _started = shared.Time.GetTimestamp();
        _span = shared.Traces?.StartRequest(method.Method, context.RequestHeaders);
        var traced = _span is { IsAllDataRequested: true };
        Method = method;
        Context = context;
        Caller = shared.Callers.Of(context);
        _accesses = shared.Audit.Enabled || traced ? [] : null;
        // A unary call is left to finish within the host's shutdown timeout (Kestrel waits for it, then aborts it);
        // a call that may last indefinitely (a stream, a Lock or Campaign waiting on etcd) ends at once.
        _stop = method.Type == MethodType.Unary && !RequestRelay.WaitsOnEtcd(method)
            ? CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken)
            : CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, shared.Stopping);
        Call = new RelayCall(method, context, traced ? new TracedUpstream(shared.Upstream, shared.Traces!) : shared.Upstream, _stop.Token);
        if (method.Type != MethodType.Unary)
        {
            shared.Metrics.StreamOpened(method.Name);
        }
    }

    public RelayedMethod Method { get; }

    public ServerCallContext Context { get; }

    /// <summary>The caller as the call was admitted.</summary>
    public Caller Caller { get; }

    /// <summary>The call as handlers see it, with the way to etcd.</summary>
    public RelayCall Call { get; }

    /// <summary>Fires when the client goes away, the call is ended with <see cref="EndAsync"/>, or (all but plain unary calls) the proxy shuts down.</summary>
    public CancellationToken Stopping => _stop.Token;

    /// <summary>Step 2: refuses the request with PERMISSION_DENIED unless the caller may make it.</summary>
    public async ValueTask AuthorizeAsync(IMessage request)
    {
        if (await _shared.Gate.AuthorizeAsync(Caller, Method.Name, request, _accesses, Call.LeaseKeysAsync).ConfigureAwait(false) is { } denial)
        {
            throw denial;
        }
    }

    /// <summary>Step 2 for a method decided by its name alone (relayed as bytes).</summary>
    public void AuthorizeMethod()
    {
        if (_shared.Gate.Authorize(Caller, Method.Name, null, null) is { } denial)
        {
            throw denial;
        }
    }

    /// <summary>Step 2 for a stream: whether the caller may open it (with the request of a server-streaming one).</summary>
    public void AuthorizeStream(IMessage? request)
    {
        if (_shared.Gate.AuthorizeStream(Caller, Method.Name, request, _accesses) is { } denial)
        {
            throw denial;
        }
    }

    /// <summary>Step 3: counts the call against the caller's and the connection's stream limits while it is open.</summary>
    public OpenStream HoldStream() => _shared.Streams.Open(Caller, Context.GetHttpContext().Connection.Id);

    /// <summary>Why a call that waited on etcd was ended by a reload (<see cref="JudgeWhileWaitingAsync"/>), or null.</summary>
    public AccessDenial? Refused { get; private set; }

    /// <summary>
    /// A Lock or Campaign waits on etcd for as long as others hold the lock or the leadership: like a stream, it is
    /// judged again on every reload while it waits, and a caller no longer allowed to make it has the wait ended
    /// instead of being granted the lock later. Returns when the call ends.
    /// </summary>
    public async Task JudgeWhileWaitingAsync(OpenStream waiting, IMessage request)
    {
        try
        {
            while (Refused is null)
            {
                await waiting.WaitForChangeAsync(Stopping).ConfigureAwait(false);
                Refused = AuthorizeStreamAgain(CurrentCaller(), request);
            }

            await EndAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
        {
            // The call ended: answered, failed, or its client gone.
        }
    }

    /// <summary>Step 5: withholds an answer that would tell the caller what it may not read.</summary>
    public void AuthorizeResponse(IMessage response)
    {
        if (_shared.Gate.AuthorizeResponse(Caller, Method.Name, response) is { } denial)
        {
            throw denial;
        }
    }

    /// <summary>The caller under the policy and trust in force now, for a stream judged again.</summary>
    public Caller CurrentCaller() => _shared.Callers.Of(Context);

    /// <summary>Whether <paramref name="caller"/> may keep the stream open.</summary>
    public AccessDenial? AuthorizeStreamAgain(Caller caller, IMessage? request) => _shared.Gate.AuthorizeStream(caller, Method.Name, request, null);

    /// <summary>
    /// A watch created on an open stream, decided and audited on its own: the record of the stream itself cannot
    /// say which ranges it watched.
    /// </summary>
    public AccessDenial? AuthorizeWatchCreate(Caller caller, WatchRequest request)
    {
        var started = _shared.Time.GetTimestamp();
        var keys = _shared.Audit.Enabled ? new List<KeyAccess>() : null;
        var denial = _shared.Gate.Authorize(caller, Method.Name, request, keys);
        if (keys is not null)
        {
            Record(caller, keys, denial, denial is null ? StatusCode.OK : StatusCode.PermissionDenied, _shared.Time.GetElapsedTime(started));
        }

        return denial;
    }

    /// <summary>A keep-alive on an open stream, for a lease the caller must own; refusals are logged, not audited.</summary>
    public AccessDenial? AuthorizeKeepAlive(Caller caller, LeaseKeepAliveRequest request) => _shared.Gate.Authorize(caller, Method.Name, request, null);

    /// <summary>Whether a watch on <paramref name="range"/> may go on for <paramref name="caller"/>; a watch cut short is audited.</summary>
    public AccessDenial? AuthorizeWatch(Caller caller, KeyRange range)
    {
        var denial = _shared.Gate.AuthorizeWatch(caller, Method.Name, range);
        if (denial is not null && _shared.Audit.Enabled)
        {
            Record(caller, [new KeyAccess(range, KeyPermission.Read, "watch")], denial, StatusCode.PermissionDenied, TimeSpan.Zero);
        }

        return denial;
    }

    /// <summary>Step 6: the status the client hears for <paramref name="e"/>, remembered for the call's record.</summary>
    public RpcException Fail(Exception e)
    {
        _failure = ClientStatus.For(e, Method.Name, _shared.Stopping.IsCancellationRequested, Context.CancellationToken.IsCancellationRequested, _shared.Logger);
        return _failure;
    }

    /// <summary>Ends the call's work on both sides (the other half of a stream, the judge) before it is recorded.</summary>
    public Task EndAsync() => _stop.CancelAsync();

    /// <summary>Step 7: the call's metrics and audit record, once.</summary>
    public void Dispose()
    {
        var elapsed = _shared.Time.GetElapsedTime(_started);
        var status = _failure?.StatusCode ?? StatusCode.OK;
        if (Method.Type != MethodType.Unary)
        {
            _shared.Metrics.StreamClosed(Method.Name);
        }

        _shared.Metrics.RequestCompleted(Method.Name, status, elapsed);
        if (_span is not null)
        {
            RelayTraces.EndRequest(_span, Caller, _accesses?.Count ?? 0, status);
        }

        if (_accesses is not null && _shared.Audit.Enabled)
        {
            Record(Caller, _accesses, _failure as AccessDenial, status, elapsed);
        }

        _stop.Dispose();
    }

    private void Record(Caller caller, IReadOnlyList<KeyAccess> keys, AccessDenial? denial, StatusCode status, TimeSpan elapsed) =>
        _shared.Audit.Record(new AuditEntry(_shared.Time.GetUtcNow(), caller, Method.Name, keys, denial is not null, denial?.Recorded, status, elapsed));
}
