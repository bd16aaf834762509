using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Streams;
using Google.Protobuf;

namespace EtcdShield.Relay;

/// <summary>
/// Judges one open stream again whenever the policy or the client trust it was last judged under is no longer the
/// current one: at once when a reload announces a change, and before every response it forwards, so that no
/// response passes under a judgement older than the configuration it meets. A caller no longer admitted to the
/// stream ends it with PERMISSION_DENIED; on a watch stream, each watch the caller may no longer read is cancelled
/// as etcd cancels one (in etcd, and to the client with the reason), and the others go on.
/// </summary>
/// <typeparam name="T">The stream's messages: parsed (<see cref="IMessage"/>) or, for a stream no handler rewrites, bytes.</typeparam>
internal sealed class StreamJudge<T> : IDisposable
    where T : class
{
    private readonly CallScope _scope;
    private readonly IMessage? _request;
    private readonly SerializedStreamWriter<T> _client;
    private readonly SerializedStreamWriter<T>? _toEtcd;
    private readonly IStreamRewriter? _rewriter;
    private readonly WatchBook? _watches;
    private readonly Func<KeyRange, string?> _refuseWatch;

    // Judging, and forwarding what was judged, take turns, so a cancellation is never overtaken by an event of
    // the watch it cancels.
    private readonly SemaphoreSlim _turn = new(1, 1);
    private Caller _judged;

    /// <param name="request">The request of a server-streaming call (Observe's election), judged again with the caller.</param>
    /// <param name="toEtcd">On a watch stream, the stream's requests to etcd, where cancellations go; null on others.</param>
    /// <param name="rewriter">What opens the values of etcd's responses, for a stream that carries values.</param>
    public StreamJudge(CallScope scope, IMessage? request, SerializedStreamWriter<T> client, SerializedStreamWriter<T>? toEtcd, IStreamRewriter? rewriter)
    {
        _scope = scope;
        _judged = scope.Caller;
        _request = request;
        _client = client;
        _toEtcd = toEtcd;
        _rewriter = rewriter;
        _watches = toEtcd is null ? null : new WatchBook();
        _refuseWatch = range => _scope.AuthorizeWatch(_judged, range) is { } denial ? CancelReason(denial) : null;
    }

    /// <summary>Why the judge ended the stream: PERMISSION_DENIED for a caller no longer admitted, or what failed.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>The cancel_reason etcd gives a watch it refuses; clientv3 turns this text into the error its watch channel reports.</summary>
    public static string CancelReason(AccessDenial denial) => $"rpc error: code = PermissionDenied desc = {denial.Status.Detail}";

    /// <summary>Judges the stream again each time <paramref name="stream"/> hears of a change, until the stream ends.</summary>
    public async Task JudgeOnChangesAsync(OpenStream stream)
    {
        try
        {
            while (true)
            {
                await stream.WaitForChangeAsync(_scope.Stopping).ConfigureAwait(false);
                await JudgeNowAsync(_scope.Stopping).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (_scope.Stopping.IsCancellationRequested && Failure is null)
        {
            // The stream ended for another reason.
            _ = e;
        }
        catch (Exception e)
        {
            Failure ??= e;
            await _scope.EndAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Judges the stream again if the policy or trust changed since it last was, before a client's request goes to
    /// etcd (a keep-alive sent just after the reload renews nothing). Throws PERMISSION_DENIED when the caller is
    /// no longer admitted; otherwise returns the caller as just judged, for the request's own checks.
    /// </summary>
    public async Task<Caller> JudgeNowAsync(CancellationToken cancellationToken)
    {
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await JudgeAsync(cancellationToken).ConfigureAwait(false);
            return _judged;
        }
        finally
        {
            _turn.Release();
        }
    }

    /// <summary>
    /// A watch create on its way to etcd: recorded, so that it can be judged again once etcd names it. Returns
    /// what to answer the client instead when the stream already holds as many watches as it may.
    /// </summary>
    public async Task<T?> CreatingAsync(WatchCreateRequest create, CancellationToken cancellationToken)
    {
        if (_watches is null)
        {
            return null;
        }

        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return _watches.Creating(KeyRange.FromEtcd(create.Key, create.RangeEnd)) is { } full
                ? Cancelled(create.WatchId, created: true, $"rpc error: code = ResourceExhausted desc = {full}")
                : null;
        }
        finally
        {
            _turn.Release();
        }
    }

    /// <summary>Passes one of etcd's responses to the client, rewritten, unless the current judgement withholds it.</summary>
    public async Task ForwardAsync(T response, CancellationToken cancellationToken)
    {
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await JudgeAsync(cancellationToken).ConfigureAwait(false);
            if (_watches is not null && response is WatchResponse watch)
            {
                switch (_watches.Screen(watch, _refuseWatch, out var reason))
                {
                    case WatchOutcome.Drop:
                        return;
                    case WatchOutcome.Cancel:
                        await CancelAsync(watch.WatchId, created: true, reason!, cancellationToken).ConfigureAwait(false);
                        return;
                    default:
                        break;
                }
            }

            if (_rewriter is not null && response is IMessage message)
            {
                response = (T)await _rewriter.RewriteResponseAsync(message, _scope.Call.CancellationToken).ConfigureAwait(false);
            }

            await _client.WriteAsync(response, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _turn.Release();
        }
    }

    public void Dispose() => _turn.Dispose();

    /// <summary>Judges the stream under the current policy and trust, unless it already was. Throws when the caller is no longer admitted.</summary>
    private async Task JudgeAsync(CancellationToken cancellationToken)
    {
        // Refusing the stream and ending the call are two steps: whatever reaches the judge in between meets a
        // judgement already current, and must not pass because of it.
        if (Failure is { } failed)
        {
            throw failed;
        }

        var current = _scope.CurrentCaller();
        if (ReferenceEquals(current.Policy, _judged.Policy) && ReferenceEquals(current.Trust, _judged.Trust))
        {
            return;
        }

        _judged = current;
        if (_scope.AuthorizeStreamAgain(current, _request) is { } refused)
        {
            Failure = refused;
            throw refused;
        }

        if (_watches is null)
        {
            return;
        }

        foreach (var (id, reason) in _watches.Revoke(_refuseWatch))
        {
            await CancelAsync(id, created: false, reason, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Cancels a watch in etcd and tells the client, as etcd tells it of a watch it cancelled.</summary>
    private async Task CancelAsync(long watchId, bool created, string reason, CancellationToken cancellationToken)
    {
        // A client that closed its side of the stream can send etcd nothing more; the proxy drops the watch's
        // events all the same. Only watch streams, whose messages are parsed, have a book of watches to cancel.
        await _toEtcd!.WriteUnlessCompletedAsync((T)(object)new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = watchId } }, cancellationToken).ConfigureAwait(false);
        await _client.WriteAsync(Cancelled(watchId, created, reason), cancellationToken).ConfigureAwait(false);
    }

    private static T Cancelled(long watchId, bool created, string reason) => (T)(object)new WatchResponse
    {
        Header = new ResponseHeader(),
        WatchId = watchId,
        Created = created,
        Canceled = true,
        CancelReason = reason,
    };
}
