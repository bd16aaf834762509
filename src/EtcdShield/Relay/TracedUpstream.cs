using System.Diagnostics;
using EtcdShield.Telemetry;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// The way to etcd of a request whose span is recorded: every call gets a client span beneath the request's, and
/// carries that span to etcd as its traceparent in place of the client's. Requests not traced use the upstream
/// as it is.
/// </summary>
internal sealed class TracedUpstream(CallInvoker upstream, RelayTraces traces) : CallInvoker
{
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        if (traces.StartUpstream(method) is not { } span)
        {
            return upstream.AsyncUnaryCall(method, host, options, request);
        }

        AsyncUnaryCall<TResponse> call;
        try
        {
            call = upstream.AsyncUnaryCall(method, host, Carrying(options, span), request);
        }
        catch (Exception e)
        {
            Failed(span, e);
            throw;
        }

        return new AsyncUnaryCall<TResponse>(EndedAsync(call.ResponseAsync, span), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose);
    }

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        if (traces.StartUpstream(method) is not { } span)
        {
            return upstream.BlockingUnaryCall(method, host, options, request);
        }

        TResponse response;
        try
        {
            response = upstream.BlockingUnaryCall(method, host, Carrying(options, span), request);
        }
        catch (Exception e)
        {
            Failed(span, e);
            throw;
        }

        RelayTraces.EndUpstream(span, StatusCode.OK);
        return response;
    }

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
    {
        if (traces.StartUpstream(method) is not { } span)
        {
            return upstream.AsyncClientStreamingCall(method, host, options);
        }

        AsyncClientStreamingCall<TRequest, TResponse> call;
        try
        {
            call = upstream.AsyncClientStreamingCall(method, host, Carrying(options, span));
        }
        catch (Exception e)
        {
            Failed(span, e);
            throw;
        }

        return new AsyncClientStreamingCall<TRequest, TResponse>(call.RequestStream, EndedAsync(call.ResponseAsync, span), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose);
    }

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        if (traces.StartUpstream(method) is not { } span)
        {
            return upstream.AsyncServerStreamingCall(method, host, options, request);
        }

        AsyncServerStreamingCall<TResponse> call;
        try
        {
            call = upstream.AsyncServerStreamingCall(method, host, Carrying(options, span), request);
        }
        catch (Exception e)
        {
            Failed(span, e);
            throw;
        }

        return new AsyncServerStreamingCall<TResponse>(call.ResponseStream, call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, () => EndStream(span, call.GetStatus, call.Dispose));
    }

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
    {
        if (traces.StartUpstream(method) is not { } span)
        {
            return upstream.AsyncDuplexStreamingCall(method, host, options);
        }

        AsyncDuplexStreamingCall<TRequest, TResponse> call;
        try
        {
            call = upstream.AsyncDuplexStreamingCall(method, host, Carrying(options, span));
        }
        catch (Exception e)
        {
            Failed(span, e);
            throw;
        }

        return new AsyncDuplexStreamingCall<TRequest, TResponse>(call.RequestStream, call.ResponseStream, call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, () => EndStream(span, call.GetStatus, call.Dispose));
    }

    private static CallOptions Carrying(CallOptions options, Activity span) => options.WithHeaders(TraceContext.Propagate(options.Headers, span));

    /// <summary>A call that could not even start (etcd's channel refused it at once).</summary>
    private static void Failed(Activity span, Exception e) => RelayTraces.EndUpstream(span, (e as RpcException)?.StatusCode ?? StatusCode.Unknown);

    private static async Task<T> EndedAsync<T>(Task<T> response, Activity span)
    {
        var status = StatusCode.Unknown;
        try
        {
            var answer = await response.ConfigureAwait(false);
            status = StatusCode.OK;
            return answer;
        }
        catch (RpcException e)
        {
            status = e.StatusCode;
            throw;
        }
        catch (OperationCanceledException)
        {
            status = StatusCode.Cancelled;
            throw;
        }
        finally
        {
            RelayTraces.EndUpstream(span, status);
        }
    }

    /// <summary>A stream's span ends when the relay lets go of the call: with etcd's status if it gave one, else as cancelled by the proxy.</summary>
    private static void EndStream(Activity span, Func<Status> status, Action dispose)
    {
        StatusCode code;
        try
        {
            code = status().StatusCode;
        }
        catch (InvalidOperationException)
        {
            code = StatusCode.Cancelled;
        }

        dispose();
        RelayTraces.EndUpstream(span, code);
    }
}
