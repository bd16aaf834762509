using EtcdShield.Api;
using System.Collections.Concurrent;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// etcd as a <see cref="CallInvoker"/>, for unit tests of the relay and its handlers. KV Range, Put, DeleteRange and
/// Txn are answered by a real little store (<see cref="Store"/>); any method can be scripted instead, one call at a
/// time or every call, to answer, fail with a status, or wait at a <see cref="Gate"/> the test opens. Streams are
/// scripted as <see cref="ScriptedStream"/>s. Every message crosses the method's own marshallers both ways, as on
/// the wire, and what was sent is recorded (a copy, so later changes by the sender do not rewrite history).
/// </summary>
/// <remarks>Methods are named as <see cref="RelayedMethod.Name"/> names them: <c>KV/Txn</c>, <c>Election/Campaign</c>.</remarks>
internal sealed class InMemoryEtcd : CallInvoker
{
    private static readonly Dictionary<string, MethodDescriptor> Descriptors =
        EtcdApi.Services.SelectMany(s => s.Methods).ToDictionary(m => $"{m.Service.Name}/{m.Name}", StringComparer.Ordinal);

    private readonly ConcurrentQueue<Sent> _sent = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<Step>> _next = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Step> _every = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConcurrentQueue<ScriptedStream>> _streams = new(StringComparer.Ordinal);

    /// <summary>
    /// One scripted call: gets the request (a copy, as parsed from the wire) and <paramref name="next"/>, what etcd
    /// would have done without this step (the store, or the method's every-call script), and answers.
    /// </summary>
    public delegate Task<IMessage> Step(IMessage request, Func<IMessage, Task<IMessage>> next, CancellationToken cancellationToken);

    public EtcdKvStore Store { get; } = new();

    /// <summary>Every unary request and stream opening, in the order they arrived.</summary>
    public IReadOnlyList<Sent> Requests => [.. _sent];

    /// <summary>The requests sent to <paramref name="method"/>, in order.</summary>
    public IReadOnlyList<T> SentTo<T>(string method)
        where T : IMessage =>
        [.. _sent.Where(s => s.Method == Known(method)).Select(s => s.Request).OfType<T>()];

    /// <summary>The next call of <paramref name="method"/> runs <paramref name="step"/>; queued steps run one per call, in order.</summary>
    public void OnNext(string method, Step step) => _next.GetOrAdd(Known(method), _ => new()).Enqueue(step);

    /// <summary>Every call of <paramref name="method"/> without a queued step runs <paramref name="step"/>.</summary>
    public void OnEvery(string method, Step step) => _every[Known(method)] = step;

    /// <summary>Every call of <paramref name="method"/> without a queued step is answered by <paramref name="answer"/>.</summary>
    public void OnEvery(string method, Func<IMessage, IMessage> answer) =>
        OnEvery(method, (request, _, _) => Task.FromResult(answer(request)));

    /// <summary>The next call of <paramref name="method"/> fails as etcd would fail it, without reaching the store.</summary>
    public void FailNext(string method, StatusCode code, string detail) =>
        OnNext(method, (_, _, _) => Task.FromException<IMessage>(new RpcException(new Status(code, detail))));

    /// <summary>The next call of <paramref name="method"/> arrives, then waits until the test opens the gate; then etcd answers it.</summary>
    public Gate HoldNext(string method)
    {
        var gate = new Gate();
        OnNext(method, async (request, next, cancellationToken) =>
        {
            gate.Arrive(request);
            await gate.WaitAsync(cancellationToken);
            return await next(request);
        });
        return gate;
    }

    /// <summary>
    /// The next call of <paramref name="method"/> is answered, and then, before the answer reaches the caller, another
    /// client changes the store: the race a read-then-write has to survive.
    /// </summary>
    public void ThenNext(string method, Action<EtcdKvStore> change) =>
        OnNext(method, async (request, next, _) =>
        {
            var answer = await next(request);
            change(Store);
            return answer;
        });

    /// <summary>The next stream opened on <paramref name="method"/> is the one returned; unscripted streams fail UNIMPLEMENTED.</summary>
    public ScriptedStream NextStream(string method)
    {
        var stream = new ScriptedStream();
        _streams.GetOrAdd(Known(method), _ => new()).Enqueue(stream);
        return stream;
    }

    /// <summary>A relay call of <paramref name="method"/> from <paramref name="context"/>'s client, to this etcd.</summary>
    public RelayCall CallFor(string method, TestServerCallContext? context = null, CancellationToken? cancellationToken = null) =>
        new(RelayedMethod.All().Single(m => m.Name == Known(method)), context ?? new TestServerCallContext(), this, cancellationToken);

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        var name = NameOf(method);
        var received = Receive(name, method.RequestMarshaller, request, options);
        var answered = AnswerAsync(name, method, received, options);
        return new AsyncUnaryCall<TResponse>(
            answered,
            Task.FromResult(new Metadata()),
            () => answered.IsCompletedSuccessfully ? Status.DefaultSuccess : StatusOf(answered.Exception),
            () => [],
            () => { });
    }

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        AsyncUnaryCall(method, host, options, request).ResponseAsync.GetAwaiter().GetResult();

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        var name = NameOf(method);
        var stream = Open(name, options);
        stream.Received(Receive(name, method.RequestMarshaller, request, options));
        var responses = stream.Reader(method.ResponseMarshaller, options.CancellationToken);
        return new AsyncServerStreamingCall<TResponse>(responses, Task.FromResult(new Metadata()), stream.GetStatus, () => [], stream.Dispose);
    }

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        throw new NotSupportedException("etcd has no client-streaming method");

    /// <summary>
    /// Called with the method's name as a stream call is made, on the caller's thread, before the stream opens. A test
    /// blocks here to hold the caller where it is: the watch hub makes its upstream streams under its own lock.
    /// </summary>
    public Action<string>? OpeningStream { get; set; }

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
    {
        var name = NameOf(method);
        OpeningStream?.Invoke(name);
        var stream = Open(name, options);
        _sent.Enqueue(new Sent(name, null, options.Headers));
        var requests = stream.Writer(method.RequestMarshaller, Descriptors[name].InputType.Parser);
        var responses = stream.Reader(method.ResponseMarshaller, options.CancellationToken);
        return new AsyncDuplexStreamingCall<TRequest, TResponse>(requests, responses, Task.FromResult(new Metadata()), stream.GetStatus, () => [], stream.Dispose);
    }

    private static string Known(string method) =>
        Descriptors.ContainsKey(method) ? method : throw new ArgumentException($"etcd has no method {method}", nameof(method));

    private static string NameOf(IMethod method) => $"{method.ServiceName[(method.ServiceName.LastIndexOf('.') + 1)..]}/{method.Name}";

    private static Status StatusOf(AggregateException? failure) =>
        failure?.InnerException is RpcException rpc ? rpc.Status : new Status(StatusCode.Unknown, failure?.InnerException?.Message ?? "");

    /// <summary>The request as etcd would parse it off the wire, recorded.</summary>
    private IMessage Receive<TRequest>(string name, Marshaller<TRequest> marshaller, TRequest request, CallOptions options)
    {
        var received = Descriptors[name].InputType.Parser.ParseFrom(Wire.Serialize(marshaller, request));
        _sent.Enqueue(new Sent(name, received, options.Headers));
        return received;
    }

    private async Task<TResponse> AnswerAsync<TRequest, TResponse>(string name, Method<TRequest, TResponse> method, IMessage request, CallOptions options)
    {
        var cancellationToken = options.CancellationToken;
        if (options.Deadline is { } deadline && deadline <= DateTime.UtcNow)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded"));
        }

        Func<IMessage, Task<IMessage>> etcd = _every.TryGetValue(name, out var every)
            ? r => every(r, Unscripted(name), cancellationToken)
            : Unscripted(name);
        var step = _next.TryGetValue(name, out var queued) && queued.TryDequeue(out var first) ? first : null;
        IMessage answer;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            answer = step is null ? await etcd(request) : await step(request, etcd, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client."));
        }

        return Wire.Deserialize(method.ResponseMarshaller, answer.ToByteArray());
    }

    private Func<IMessage, Task<IMessage>> Unscripted(string name) => request => name switch
    {
        "KV/Range" => Task.FromResult<IMessage>(Store.Range((RangeRequest)request)),
        "KV/Put" => Task.FromResult<IMessage>(Store.Put((PutRequest)request)),
        "KV/DeleteRange" => Task.FromResult<IMessage>(Store.DeleteRange((DeleteRangeRequest)request)),
        "KV/Txn" => Task.FromResult<IMessage>(Store.Txn((TxnRequest)request)),
        _ => Task.FromException<IMessage>(new RpcException(new Status(StatusCode.Unimplemented, $"in-memory etcd: nothing scripted for {name}"))),
    };

    private ScriptedStream Open(string name, CallOptions options)
    {
        if (_streams.TryGetValue(name, out var queued) && queued.TryDequeue(out var stream))
        {
            stream.Open(options);
            return stream;
        }

        var unscripted = new ScriptedStream();
        unscripted.Open(options);
        unscripted.Fail(StatusCode.Unimplemented, $"in-memory etcd: no stream scripted for {name}");
        return unscripted;
    }

    /// <summary>One request as etcd received it (none for a duplex stream's opening), with the metadata it came with.</summary>
    public sealed record Sent(string Method, IMessage? Request, Metadata? Headers);
}

/// <summary>
/// Holds a scripted call: <see cref="Reached"/> completes when the call arrives (with its request); the call goes on
/// when the test calls <see cref="Open"/>. A cancelled call stops waiting and fails as cancelled.
/// </summary>
internal sealed class Gate
{
    private readonly TaskCompletionSource<IMessage> _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<IMessage> Reached => _reached.Task;

    public void Open() => _opened.TrySetResult();

    internal void Arrive(IMessage request) => _reached.TrySetResult(request);

    internal Task WaitAsync(CancellationToken cancellationToken) => _opened.Task.WaitAsync(cancellationToken);
}
