using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// The path of every call through the proxy, in one place. Every call, of every kind, takes these steps in this
/// order, each one call on its <see cref="CallScope"/>:
/// <list type="number">
/// <item><description>Begin: who is calling (the certificate admitted on the connection, under the policy and
/// client trust in force now), the clock, and a cancellation that fires when the client goes or the proxy stops.</description></item>
/// <item><description>Authorize: whether the caller may make exactly this request (<see cref="Authorization.AccessGate"/>);
/// a stream is authorized as it opens and judged again on every reload and before every message, and a call that
/// waits on etcd (Lock, Campaign) again on every reload while it waits.</description></item>
/// <item><description>Hold: streams, and calls that wait on etcd for as long as others hold a lock, count against
/// the caller's and the connection's stream limits.</description></item>
/// <item><description>Handle or forward: the method's handler from <see cref="RelayRoutes"/> (values sealed and
/// opened, lease IDs chosen, member URLs hidden), or etcd's call as is, with the client's deadline and metadata;
/// a method no handler rewrites and whose authorization needs only its name is relayed as bytes, never parsed.</description></item>
/// <item><description>Authorize the answer: an answer that lists keys is withheld unless the caller may read them.</description></item>
/// <item><description>Fail: etcd's status code and message pass through unchanged (clientv3 rebuilds its typed
/// errors from the exact text); the proxy's own failures become UNAVAILABLE, CANCELLED or INTERNAL (<see cref="ClientStatus"/>).</description></item>
/// <item><description>Record: the request metrics and the audit record, once, when the scope is disposed.</description></item>
/// </list>
/// </summary>
internal sealed class RequestRelay
{
    private readonly CallScopes _scopes;
    private readonly RelayRoutes _routes;
    private readonly IWatchStreams? _watches;

    /// <param name="watches">Serves watch streams from shared upstream watches (<c>--watch-sharing</c>); null relays each watch stream one to one.</param>
    public RequestRelay(CallScopes scopes, RelayRoutes routes, IWatchStreams? watches = null)
    {
        _scopes = scopes;
        _routes = routes;
        _watches = watches;
    }

    public async Task<IMessage> UnaryAsync(RelayedMethod method, IMessage request, ServerCallContext context)
    {
        using var scope = _scopes.Begin(method, context);
        try
        {
            await scope.AuthorizeAsync(request).ConfigureAwait(false);
            using var waiting = WaitsOnEtcd(method) ? scope.HoldStream() : null;
            var judging = waiting is null ? null : scope.JudgeWhileWaitingAsync(waiting, request);
            try
            {
                var response = _routes.UnaryHandler(method) is { } handler
                    ? await handler.HandleAsync(request, scope.Call).ConfigureAwait(false)
                    : await scope.Call.ForwardUnaryAsync(request).ConfigureAwait(false);
                scope.AuthorizeResponse(response);
                return response;
            }
            finally
            {
                if (judging is not null)
                {
                    await scope.EndAsync().ConfigureAwait(false);
                    await judging.ConfigureAwait(false);
                }
            }
        }
        catch (Exception e)
        {
            // A refusal on a reload is what cancelled the wait, so it is what the client hears.
            throw scope.Fail(scope.Refused ?? e);
        }
    }

    /// <summary>A unary method relayed as bytes: decided by its name, forwarded untouched.</summary>
    public async Task<byte[]> PassUnaryAsync(RelayedMethod method, byte[] request, ServerCallContext context)
    {
        using var scope = _scopes.Begin(method, context);
        try
        {
            scope.AuthorizeMethod();
            return await scope.Call.ForwardUnaryAsync(request).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw scope.Fail(e);
        }
    }

    /// <summary>Observe, and Snapshot (as bytes): one request, then etcd's answers as they come, each judged and opened on the way.</summary>
    public async Task ServerStreamingAsync<T>(RelayedMethod method, T request, IServerStreamWriter<T> responses, ServerCallContext context)
        where T : class
    {
        using var scope = _scopes.Begin(method, context);
        using var client = new SerializedStreamWriter<T>(responses, shared: false);
        StreamJudge<T>? judge = null;
        Task? judging = null;
        try
        {
            scope.AuthorizeStream(request as IMessage);
            using var open = scope.HoldStream();
            judge = new StreamJudge<T>(scope, request as IMessage, client, toEtcd: null, _routes.StreamRewriter(method));
            judging = judge.JudgeOnChangesAsync(open);
            using var upstream = scope.Call.ForwardServerStreaming(request);
            while (await upstream.ResponseStream.MoveNext(scope.Stopping).ConfigureAwait(false))
            {
                await judge.ForwardAsync(upstream.ResponseStream.Current, scope.Stopping).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            throw scope.Fail(judge?.Failure ?? e);
        }
        finally
        {
            await scope.EndAsync().ConfigureAwait(false);
            await (judging ?? Task.CompletedTask).ConfigureAwait(false);
            judge?.Dispose();
        }
    }

    /// <summary>
    /// Watch and LeaseKeepAlive: a one-to-one relay of the client's stream, both halves judged; or, with watch
    /// sharing on, a watch stream served from the shared upstream watches, each watch judged as it is created and again on every reload.
    /// </summary>
    public async Task DuplexStreamingAsync<T>(RelayedMethod method, IAsyncStreamReader<T> requests, IServerStreamWriter<T> responses, ServerCallContext context)
        where T : class
    {
        if (method.IsWatch && _watches is not null && requests is IAsyncStreamReader<IMessage> watchRequests && responses is IServerStreamWriter<IMessage> watchResponses)
        {
            await SharedWatchAsync(method, watchRequests, watchResponses, context).ConfigureAwait(false);
            return;
        }

        using var scope = _scopes.Begin(method, context);
        // On a watch stream both directions may answer the client (the pump refuses a forbidden watch itself, the
        // judge cancels one no longer allowed) and both write to etcd, so writes take turns there; a keep-alive
        // stream's pump answers keep-alives for foreign leases itself; other streams write from one side only.
        using var client = new SerializedStreamWriter<T>(responses, method.AnswersOnStream);
        SerializedStreamWriter<T>? toEtcd = null;
        StreamJudge<T>? judge = null;
        ClientRequestPump<T>? pump = null;
        Task? pumping = null;
        Task? judging = null;
        try
        {
            scope.AuthorizeStream(null);
            using var open = scope.HoldStream();
            using var upstream = scope.Call.ForwardDuplex<T>();
            toEtcd = new SerializedStreamWriter<T>(upstream.RequestStream, method.IsWatch);
            judge = new StreamJudge<T>(scope, null, client, method.IsWatch ? toEtcd : null, _routes.StreamRewriter(method));
            judging = judge.JudgeOnChangesAsync(open);
            pump = new ClientRequestPump<T>(scope, requests, upstream.RequestStream, toEtcd, client, judge);
            pumping = pump.RunAsync();
            while (await upstream.ResponseStream.MoveNext(scope.Stopping).ConfigureAwait(false))
            {
                await judge.ForwardAsync(upstream.ResponseStream.Current, scope.Stopping).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            // A failure on the client's side of the stream (a request we refused), or the judge ending the stream,
            // explains the cancellation that the upstream side then saw, so it is the one the client hears about.
            throw scope.Fail(judge?.Failure ?? pump?.Failure ?? e);
        }
        finally
        {
            await scope.EndAsync().ConfigureAwait(false);
            await (pumping ?? Task.CompletedTask).ConfigureAwait(false);
            await (judging ?? Task.CompletedTask).ConfigureAwait(false);
            judge?.Dispose();
            toEtcd?.Dispose();
        }
    }

    /// <summary>A watch stream served by <see cref="IWatchStreams"/>: the same steps, the watches shared with other streams.</summary>
    private async Task SharedWatchAsync(RelayedMethod method, IAsyncStreamReader<IMessage> requests, IServerStreamWriter<IMessage> responses, ServerCallContext context)
    {
        using var scope = _scopes.Begin(method, context);
        IWatchSession? session = null;
        try
        {
            scope.AuthorizeStream(null);
            using var open = scope.HoldStream();
            session = _watches!.Open(scope, open, requests, responses);
            await session.RunAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw scope.Fail(session?.Failure ?? e);
        }
        finally
        {
            await scope.EndAsync().ConfigureAwait(false);
            if (session is not null)
            {
                await session.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// A Lock, and a Campaign, wait for their turn on an etcd watch for as long as others hold the lock or the
    /// leadership: they count against the stream limits like a stream.
    /// </summary>
    internal static bool WaitsOnEtcd(RelayedMethod method) => method.Name is "Lock/Lock" or "Election/Campaign";
}
