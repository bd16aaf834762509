using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// One client call on its way through the proxy: what it is, who sent it, and how to reach etcd with the
/// client's deadline, cancellation and metadata carried along.
/// </summary>
internal sealed class RelayCall
{
    private readonly CallInvoker _upstream;
    private KV.KVClient? _kv;
    private Lease.LeaseClient? _lease;
    private Watch.WatchClient? _watcher;

    /// <param name="cancellationToken">Ends the call early; defaults to the client's own cancellation. The relay
    /// passes one that also fires when the proxy shuts down.</param>
    public RelayCall(RelayedMethod method, ServerCallContext context, CallInvoker upstream, CancellationToken? cancellationToken = null)
    {
        Method = method;
        Context = context;
        _upstream = upstream;
        CancellationToken = cancellationToken ?? context.CancellationToken;
        Options = new CallOptions(
            headers: ForwardedHeaders.From(context.RequestHeaders),
            deadline: context.Deadline == DateTime.MaxValue ? null : context.Deadline,
            cancellationToken: CancellationToken);
    }

    public RelayedMethod Method { get; }

    public ServerCallContext Context { get; }

    public CallOptions Options { get; }

    /// <summary>Fires when the client goes away, its deadline passes, or the proxy shuts down.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>A typed KV client on the same upstream, for handlers that need more than one round trip.</summary>
    public KV.KVClient Kv => _kv ??= new KV.KVClient(_upstream);

    /// <summary>A typed Lease client on the same upstream, for looking up what a lease holds.</summary>
    public Lease.LeaseClient Lease => _lease ??= new Lease.LeaseClient(_upstream);

    /// <summary>A typed Watch client on the same upstream, for handlers that wait for a change (a blocked Lock).</summary>
    public Watch.WatchClient Watcher => _watcher ??= new Watch.WatchClient(_upstream);

    public async Task<IMessage> ForwardUnaryAsync(IMessage request) =>
        await _upstream.AsyncUnaryCall(Method.Method, null, Options, request).ResponseAsync.ConfigureAwait(false);

    public async Task<byte[]> ForwardUnaryAsync(byte[] request) =>
        await _upstream.AsyncUnaryCall(Method.Bytes, null, Options, request).ResponseAsync.ConfigureAwait(false);

    public AsyncServerStreamingCall<T> ForwardServerStreaming<T>(T request)
        where T : class =>
        _upstream.AsyncServerStreamingCall(Method.As<T>(), null, Options, request);

    public AsyncDuplexStreamingCall<T, T> ForwardDuplex<T>()
        where T : class =>
        _upstream.AsyncDuplexStreamingCall(Method.As<T>(), null, Options);

    /// <summary>The keys attached to a lease, as etcd lists them.</summary>
    public async Task<IReadOnlyList<ByteString>> LeaseKeysAsync(long leaseId) =>
        (await Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = leaseId, Keys = true }, Options).ConfigureAwait(false)).Keys;
}
