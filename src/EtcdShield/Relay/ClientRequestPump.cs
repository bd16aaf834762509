using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// The client-to-etcd half of a bidirectional stream: each of the client's messages is judged (the stream again, a
/// new watch's range, a keep-alive's lease) and then forwarded, or answered by the proxy in etcd's words.
/// </summary>
internal sealed class ClientRequestPump<T>
    where T : class
{
    private readonly CallScope _scope;
    private readonly IAsyncStreamReader<T> _requests;
    private readonly IClientStreamWriter<T> _upstream;
    private readonly SerializedStreamWriter<T> _toEtcd;
    private readonly SerializedStreamWriter<T> _client;
    private readonly StreamJudge<T> _judge;

    public ClientRequestPump(CallScope scope, IAsyncStreamReader<T> requests, IClientStreamWriter<T> upstream, SerializedStreamWriter<T> toEtcd, SerializedStreamWriter<T> client, StreamJudge<T> judge)
    {
        _scope = scope;
        _requests = requests;
        _upstream = upstream;
        _toEtcd = toEtcd;
        _client = client;
        _judge = judge;
    }

    /// <summary>What ended this half of the stream early (a request refused, the client's reset), or null.</summary>
    public Exception? Failure { get; private set; }

    public async Task RunAsync()
    {
        var stop = _scope.Stopping;
        try
        {
            while (await ReadFromClientAsync(stop).ConfigureAwait(false))
            {
                var request = _requests.Current;
                var caller = await _judge.JudgeNowAsync(stop).ConfigureAwait(false);
                if (await AnswerAsync(request, caller, stop).ConfigureAwait(false) is { } answer)
                {
                    await _client.WriteAsync(answer, stop).ConfigureAwait(false);
                    continue;
                }

                await _toEtcd.WriteAsync(request, stop).ConfigureAwait(false);
            }

            // The client closed its side; etcd keeps answering on the other side until it is done.
            await _toEtcd.CompleteAsync(_upstream.CompleteAsync, stop).ConfigureAwait(false);
        }
        catch (Exception e) when (stop.IsCancellationRequested)
        {
            // The call is ending for another reason; nothing to report from this side.
            _ = e;
        }
        catch (Exception e)
        {
            Failure = e;
            await _scope.EndAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The proxy's own answer to a message that asks for more than the stream itself, or null to forward it: a watch
    /// on a range the caller may not read is created and cancelled at once with the reason, as etcd refuses one; a
    /// watch past the stream's limit likewise; a keep-alive of a lease the caller does not own is answered as etcd
    /// answers one for an unknown lease (its ID, TTL 0), which clientv3 reports as an expired lease. The caller is
    /// judged per message, so a policy or CRL reloaded while the stream is open applies to the next one; other
    /// watches and leases on the stream are not disturbed.
    /// </summary>
    private async ValueTask<T?> AnswerAsync(T request, Caller caller, CancellationToken cancellationToken)
    {
        switch (request)
        {
            case WatchRequest { CreateRequest: { } create } watch:
                if (_scope.AuthorizeWatchCreate(caller, watch) is { } denial)
                {
                    return (T)(object)new WatchResponse
                    {
                        Header = new ResponseHeader(),
                        WatchId = create.WatchId,
                        Created = true,
                        Canceled = true,
                        CancelReason = StreamJudge<T>.CancelReason(denial),
                    };
                }

                return await _judge.CreatingAsync(create, cancellationToken).ConfigureAwait(false);
            case LeaseKeepAliveRequest keepAlive when _scope.AuthorizeKeepAlive(caller, keepAlive) is not null:
                return (T)(object)new LeaseKeepAliveResponse { Header = new ResponseHeader(), ID = keepAlive.ID, TTL = 0 };
            default:
                return null;
        }
    }

    /// <summary>
    /// The next message of the client's stream. A client that resets its stream or drops its connection (a
    /// killed <c>etcdctl watch</c>) ends the call as cancelled, as a client cancellation does: Kestrel reports it as
    /// an IOException from the request body, possibly before it cancels the call's token.
    /// </summary>
    private async Task<bool> ReadFromClientAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _requests.MoveNext(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "context canceled"));
        }
    }
}
