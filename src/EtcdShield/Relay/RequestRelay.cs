using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Authentication;
using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Streams;
using EtcdShield.Telemetry;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// The path of every call through the proxy, in one place: accept, hand to the method's handler or forward
/// as is, relay the answer, and pass etcd's status code and message through unchanged (clientv3 rebuilds
/// its typed errors from the exact text).
/// </summary>
internal sealed partial class RequestRelay
{
    private readonly CallInvoker _upstream;
    private readonly RelayRoutes _routes;
    private readonly AccessGate _gate;
    private readonly OpenStreams _streams;
    private readonly RelayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;

    /// <param name="lifetime">When the host starts stopping, calls still in flight (watches, lease keep-alives,
    /// blocked Lock calls) are ended with UNAVAILABLE, as etcd ends them when it stops, so that clients reconnect
    /// elsewhere at once and shutdown does not wait for them until the host's timeout.</param>
    public RequestRelay(UpstreamChannel upstream, RelayRoutes routes, AccessGate gate, OpenStreams streams, RelayMetrics metrics, ILogger<RequestRelay> logger, IHostApplicationLifetime? lifetime = null)
    {
        _upstream = upstream.Invoker;
        _routes = routes;
        _gate = gate;
        _streams = streams;
        _metrics = metrics;
        _logger = logger;
        _stopping = lifetime?.ApplicationStopping ?? CancellationToken.None;
    }

    public async Task<IMessage> UnaryAsync(RelayedMethod method, IMessage request, ServerCallContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var status = StatusCode.OK;
        var caller = _gate.CallerOf(context);
        var denied = false;
        RpcException? failure = null;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping);
        try
        {
            var call = new RelayCall(method, context, _upstream, stop.Token);
            if (await _gate.AuthorizeAsync(caller, method, request, call).ConfigureAwait(false) is { } refused)
            {
                denied = true;
                throw refused;
            }

            // A Lock, and a Campaign, wait for their turn on an etcd watch for as long as others hold the lock or the
            // leadership: they count against the stream limits like a stream.
            using var waiting = method.Name is "Lock/Lock" or "Election/Campaign" ? _streams.Open(caller, context.GetHttpContext().Connection.Id) : null;
            var response = _routes.UnaryHandler(method) is { } handler
                ? await handler.HandleAsync(request, call).ConfigureAwait(false)
                : await call.ForwardUnaryAsync(request).ConfigureAwait(false);
            if (_gate.AuthorizeResponse(caller, method, response) is { } withheld)
            {
                denied = true;
                throw withheld;
            }

            return response;
        }
        catch (Exception e)
        {
            failure = AsClientStatus(method, e, context);
            status = failure.StatusCode;
            throw failure;
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            _metrics.RequestCompleted(method.Name, status, elapsed);
            _gate.Completed(caller, method, request, denied, failure, status, elapsed);
        }
    }

    public async Task ServerStreamingAsync(RelayedMethod method, IMessage request, IServerStreamWriter<IMessage> responses, ServerCallContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var status = StatusCode.OK;
        var caller = _gate.CallerOf(context);
        var denied = false;
        RpcException? failure = null;
        _metrics.StreamOpened(method.Name);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping);
        using var client = new SerializedStreamWriter(responses, shared: false);
        StreamJudge? judge = null;
        Task? judging = null;
        try
        {
            var call = new RelayCall(method, context, _upstream, stop.Token);
            if (await _gate.AuthorizeAsync(caller, method, request, call).ConfigureAwait(false) is { } refused)
            {
                denied = true;
                throw refused;
            }

            using var open = _streams.Open(caller, context.GetHttpContext().Connection.Id);
            judge = new StreamJudge(_gate, call, caller, request, client, toEtcd: null, stop);
            judging = judge.JudgeOnChangesAsync(open);
            var rewriter = _routes.StreamRewriter(method);
            var forwarded = rewriter is null ? request : await rewriter.RewriteRequestAsync(request, call).ConfigureAwait(false);
            using var upstream = call.ForwardServerStreaming(forwarded);
            while (await upstream.ResponseStream.MoveNext(stop.Token).ConfigureAwait(false))
            {
                await judge.ForwardAsync(upstream.ResponseStream.Current, rewriter, stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            failure = AsClientStatus(method, judge?.Failure ?? e, context);
            status = failure.StatusCode;
            denied |= judge?.Failure is RpcException { StatusCode: StatusCode.PermissionDenied };
            throw failure;
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            if (judging is not null)
            {
                await judging.ConfigureAwait(false);
            }

            judge?.Dispose();
            var elapsed = Stopwatch.GetElapsedTime(started);
            _metrics.StreamClosed(method.Name);
            _metrics.RequestCompleted(method.Name, status, elapsed);
            _gate.Completed(caller, method, request, denied, failure, status, elapsed);
        }
    }

    public async Task DuplexStreamingAsync(RelayedMethod method, IAsyncStreamReader<IMessage> requests, IServerStreamWriter<IMessage> responses, ServerCallContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var status = StatusCode.OK;
        var caller = _gate.CallerOf(context);
        var denied = false;
        RpcException? failure = null;
        _metrics.StreamOpened(method.Name);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping);
        var call = new RelayCall(method, context, _upstream, stop.Token);
        var rewriter = _routes.StreamRewriter(method);
        // On a watch stream both directions may answer the client (the pump refuses a forbidden watch itself, the
        // judge cancels one no longer allowed) and both write to etcd, so writes take turns there; a keep-alive
        // stream's pump answers keep-alives for foreign leases itself; other streams write from one side only.
        var watch = AccessGate.IsWatch(method);
        using var client = new SerializedStreamWriter(responses, AccessGate.AnswersOnStream(method));
        Exception? requestFailure = null;
        SerializedStreamWriter? toEtcd = null;
        StreamJudge? judge = null;
        Task? pump = null;
        Task? judging = null;
        try
        {
            if (_gate.AuthorizeStream(caller, method) is { } refused)
            {
                denied = true;
                throw refused;
            }

            using var open = _streams.Open(caller, context.GetHttpContext().Connection.Id);
            using var upstream = call.ForwardDuplex(call.Options.WithCancellationToken(stop.Token));
            toEtcd = new SerializedStreamWriter(upstream.RequestStream, watch);
            judge = new StreamJudge(_gate, call, caller, null, client, watch ? toEtcd : null, stop);
            judging = judge.JudgeOnChangesAsync(open);
            var stream = new StreamRelay(requests, upstream.RequestStream, toEtcd, client, rewriter, call, _gate, judge, stop, e => requestFailure = e);
            pump = stream.PumpRequestsAsync();
            while (await upstream.ResponseStream.MoveNext(stop.Token).ConfigureAwait(false))
            {
                await judge.ForwardAsync(upstream.ResponseStream.Current, rewriter, stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            // A failure on the client's side of the stream (a request we refused), or the judge ending the stream,
            // explains the cancellation that the upstream side then saw, so it is the one the client hears about.
            failure = AsClientStatus(method, judge?.Failure ?? requestFailure ?? e, context);
            status = failure.StatusCode;
            denied |= judge?.Failure is RpcException { StatusCode: StatusCode.PermissionDenied };
            throw failure;
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            if (pump is not null)
            {
                await pump.ConfigureAwait(false);
            }

            if (judging is not null)
            {
                await judging.ConfigureAwait(false);
            }

            judge?.Dispose();
            toEtcd?.Dispose();
            var elapsed = Stopwatch.GetElapsedTime(started);
            _metrics.StreamClosed(method.Name);
            _metrics.RequestCompleted(method.Name, status, elapsed);
            _gate.Completed(caller, method, null, denied, failure, status, elapsed);
        }
    }

    /// <summary>The client-to-etcd half of a bidirectional stream.</summary>
    private sealed class StreamRelay(
        IAsyncStreamReader<IMessage> requests,
        IClientStreamWriter<IMessage> upstream,
        SerializedStreamWriter toEtcd,
        SerializedStreamWriter client,
        IStreamRewriter? rewriter,
        RelayCall call,
        AccessGate gate,
        StreamJudge judge,
        CancellationTokenSource stop,
        Action<Exception> fail)
    {
        public async Task PumpRequestsAsync()
        {
            try
            {
                while (await ReadFromClientAsync(requests, stop.Token).ConfigureAwait(false))
                {
                    var request = requests.Current;
                    await judge.JudgeNowAsync(stop.Token).ConfigureAwait(false);
                    // The caller is looked up per message, so a policy or CRL reloaded while the stream is open
                    // applies to the watches created after it.
                    if (gate.RefuseOnStream(gate.CallerOf(call.Context), call.Method, request) is { } refusal)
                    {
                        await client.WriteAsync(refusal, stop.Token).ConfigureAwait(false);
                        continue;
                    }

                    if (request is WatchRequest { CreateRequest: { } create } && await judge.CreatingAsync(create, stop.Token).ConfigureAwait(false) is { } full)
                    {
                        await client.WriteAsync(full, stop.Token).ConfigureAwait(false);
                        continue;
                    }

                    if (rewriter is not null)
                    {
                        request = await rewriter.RewriteRequestAsync(request, call).ConfigureAwait(false);
                    }

                    await toEtcd.WriteAsync(request, stop.Token).ConfigureAwait(false);
                }

                // The client closed its side; etcd keeps answering on the other side until it is done.
                await toEtcd.CompleteAsync(upstream.CompleteAsync, stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (stop.IsCancellationRequested)
            {
                // The call is ending for another reason; nothing to report from this side.
                _ = e;
            }
            catch (Exception e)
            {
                fail(e);
                await stop.CancelAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The next message of the client's stream. A client that resets its stream or drops its connection (a
    /// killed <c>etcdctl watch</c>) ends the call as cancelled, as a client cancellation does: Kestrel reports it as
    /// an IOException from the request body, possibly before it cancels the call's token.
    /// </summary>
    private static async Task<bool> ReadFromClientAsync(IAsyncStreamReader<IMessage> requests, CancellationToken cancellationToken)
    {
        try
        {
            return await requests.MoveNext(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "context canceled"));
        }
    }

    private RpcException AsClientStatus(RelayedMethod method, Exception e, ServerCallContext context)
    {
        switch (e)
        {
            // Ended because the proxy is stopping while the client still waits: tell it to go elsewhere.
            case RpcException { StatusCode: StatusCode.Cancelled } or OperationCanceledException or IOException
                when _stopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested:
                return new RpcException(new Status(StatusCode.Unavailable, "etcdshield: shutting down"));
            // The upstream channel could not reach etcd or lost it (connection refused or dropped, a TLS handshake
            // refused either way). Grpc.Net.Client reports that as UNAVAILABLE or INTERNAL with .NET exception text;
            // the operator needs the reason, the client only that etcd is out of reach, which it may retry.
            case RpcException { StatusCode: StatusCode.Unavailable or StatusCode.Internal, Status.DebugException: HttpRequestException or IOException or AuthenticationException or SocketException } transport
                when !context.CancellationToken.IsCancellationRequested:
                Log.UpstreamUnreachable(_logger, method.Name, transport.Status.StatusCode, transport.Status.DebugException);
                return new RpcException(new Status(StatusCode.Unavailable, "etcdshield: etcd is unreachable"));
            case RpcException rpc:
                return rpc;
            // The client has gone (or its deadline passed): whatever failed after that, nobody is listening for
            // the answer, and nothing went wrong in the proxy.
            case OperationCanceledException or IOException or InvalidOperationException when context.CancellationToken.IsCancellationRequested:
                return new RpcException(new Status(StatusCode.Cancelled, "context canceled"));
            default:
                Log.UnexpectedFailure(_logger, method.Name, e);
                return new RpcException(new Status(StatusCode.Internal, "etcdshield: internal error"));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.UnexpectedFailure, EventName = nameof(EventIds.UnexpectedFailure), Level = LogLevel.Error, Message = "Unexpected failure relaying {Method}")]
        public static partial void UnexpectedFailure(ILogger logger, string method, Exception exception);

        [LoggerMessage(EventId = EventIds.UpstreamUnreachable, EventName = nameof(EventIds.UpstreamUnreachable), Level = LogLevel.Warning, Message = "etcd is unreachable: {Method} failed with {Code} on the connection to etcd; the client is told UNAVAILABLE")]
        public static partial void UpstreamUnreachable(ILogger logger, string method, StatusCode code, Exception exception);
    }
}
