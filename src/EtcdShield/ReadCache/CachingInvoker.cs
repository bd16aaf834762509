using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.ReadCache;

/// <summary>
/// etcd's channel as the relay sees it when the cache is on: a serializable range may be answered from the cache
/// (or its answer kept), and a write invalidates what it changed before its answer returns, so that the client who
/// wrote reads its write through the proxy. Every other call passes as it is.
/// </summary>
internal sealed class CachingInvoker : CallInvoker
{
    private const string Range = "/etcdserverpb.KV/Range";

    // Writes whose keys the request names.
    private static readonly HashSet<string> NamedWrites = new(StringComparer.Ordinal)
    {
        "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.KV/Txn",
    };

    // Writes that change keys the request does not name: a revoked lease deletes its keys; the election and lock
    // services of etcd write their own keys.
    private static readonly HashSet<string> UnnamedWrites = new(StringComparer.Ordinal)
    {
        "/etcdserverpb.Lease/LeaseRevoke",
        "/v3electionpb.Election/Campaign", "/v3electionpb.Election/Proclaim", "/v3electionpb.Election/Resign",
        "/v3lockpb.Lock/Lock", "/v3lockpb.Lock/Unlock",
    };

    private readonly CallInvoker _upstream;
    private readonly SerializableReadCache _cache;

    public CachingInvoker(CallInvoker upstream, SerializableReadCache cache)
    {
        _upstream = upstream;
        _cache = cache;
    }

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        var name = method.FullName;
        if (name == Range && request is RangeRequest range && SerializableReadCache.KeyOf(range, options.Headers) is { } key)
        {
            if (_cache.TryGet(key, out var generation) is { } cached)
            {
                return Answered((TResponse)(object)cached);
            }

            var filling = _upstream.AsyncUnaryCall(method, host, options, request);
            return Then(filling, FillAsync(filling.ResponseAsync, key, range, generation));
        }

        if (NamedWrites.Contains(name))
        {
            var writing = _upstream.AsyncUnaryCall(method, host, options, request);
            return Then(writing, InvalidateAsync(writing.ResponseAsync, request!));
        }

        if (UnnamedWrites.Contains(name))
        {
            var writing = _upstream.AsyncUnaryCall(method, host, options, request);
            return Then(writing, HoldBackAsync(writing.ResponseAsync));
        }

        var answering = _upstream.AsyncUnaryCall(method, host, options, request);
        return Then(answering, SeenAsync(answering.ResponseAsync));
    }

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        AsyncUnaryCall(method, host, options, request).ResponseAsync.GetAwaiter().GetResult();

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        _upstream.AsyncServerStreamingCall(method, host, options, request);

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        _upstream.AsyncClientStreamingCall(method, host, options);

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        _upstream.AsyncDuplexStreamingCall(method, host, options);

    private static AsyncUnaryCall<TResponse> Answered<TResponse>(TResponse response) =>
        new(Task.FromResult(response), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });

    private static AsyncUnaryCall<TResponse> Then<TResponse>(AsyncUnaryCall<TResponse> call, Task<TResponse> response) =>
        new(response, call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose);

    /// <summary>The revision of an etcd answer: every answer of etcd's services has its header in field 1.</summary>
    private static long RevisionOf(object? response) => response switch
    {
        RangeResponse range => range.Header?.Revision ?? 0,
        PutResponse put => put.Header?.Revision ?? 0,
        DeleteRangeResponse delete => delete.Header?.Revision ?? 0,
        TxnResponse txn => txn.Header?.Revision ?? 0,
        IMessage message => (message.Descriptor.FindFieldByNumber(1)?.Accessor.GetValue(message) as ResponseHeader)?.Revision ?? 0,
        _ => 0,
    };

    private async Task<TResponse> FillAsync<TResponse>(Task<TResponse> answer, ByteString key, RangeRequest range, long generation)
    {
        var response = await answer.ConfigureAwait(false);
        if (response is RangeResponse etcd)
        {
            // The caller opens the values of the answer it gets, in place: the cache keeps its own copy, as etcd sent it.
            _cache.Entries!.Store(key, range, etcd.Clone(), generation);
        }

        _cache.Entries!.Saw(RevisionOf(response));
        return response;
    }

    private async Task<TResponse> InvalidateAsync<TResponse>(Task<TResponse> answer, object request)
    {
        TResponse response;
        try
        {
            response = await answer.ConfigureAwait(false);
        }
        catch
        {
            _cache.Entries!.MayHaveWritten(WrittenRange.Of(request));
            throw;
        }

        var ranges = WrittenRange.Of(request);
        if (request is not IMessage)
        {
            // Relayed as bytes, its keys unread.
            _cache.Entries!.WroteUnnamed(0);
        }
        else if (ranges.Count > 0)
        {
            var revision = RevisionOf(response);
            if (revision > 0)
            {
                _cache.Entries!.Wrote(ranges, revision);
                _cache.Entries.Saw(revision);
            }
            else
            {
                _cache.Entries!.WroteUnnamed(0);
            }
        }

        return response;
    }

    /// <summary>Any other answer: its revision holds serving back until the watch has delivered it (<see cref="RangeCache.Saw"/>).</summary>
    private async Task<TResponse> SeenAsync<TResponse>(Task<TResponse> answer)
    {
        var response = await answer.ConfigureAwait(false);
        _cache.Entries!.Saw(RevisionOf(response));
        return response;
    }

    private async Task<TResponse> HoldBackAsync<TResponse>(Task<TResponse> answer)
    {
        var response = await answer.ConfigureAwait(false);
        _cache.Entries!.WroteUnnamed(RevisionOf(response));
        return response;
    }
}
