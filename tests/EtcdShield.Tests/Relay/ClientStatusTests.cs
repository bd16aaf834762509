using System.Net.Sockets;
using System.Security.Authentication;
using EtcdShield.Relay;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Relay;

/// <summary>What the client hears for each way a call can fail.</summary>
public sealed class ClientStatusTests
{
    private static RpcException For(Exception e, bool stopping = false, bool clientGone = false) =>
        ClientStatus.For(e, "KV/Put", stopping, clientGone, NullLogger.Instance);

    [Fact]
    public void Etcds_own_status_passes_through_as_the_same_exception()
    {
        var etcd = new RpcException(new Status(StatusCode.FailedPrecondition, "etcdserver: requested lease not found"));

        Assert.Same(etcd, For(etcd));
    }

    [Theory]
    [InlineData(StatusCode.Unavailable)]
    [InlineData(StatusCode.Internal)]
    public void A_lost_connection_to_etcd_is_unavailable_without_the_dotnet_text(StatusCode code)
    {
        foreach (var cause in new Exception[] { new HttpRequestException("refused"), new IOException("reset"), new AuthenticationException("handshake"), new SocketException() })
        {
            var status = For(new RpcException(new Status(code, "Error starting gRPC call. HttpRequestException: refused", cause)));

            Assert.Equal(StatusCode.Unavailable, status.StatusCode);
            Assert.Equal("etcdshield: etcd is unreachable", status.Status.Detail);
        }
    }

    [Fact]
    public void An_internal_status_from_etcd_itself_is_not_mistaken_for_a_lost_connection()
    {
        var etcd = new RpcException(new Status(StatusCode.Internal, "etcdserver: corrupt cluster"));

        Assert.Same(etcd, For(etcd));
    }

    [Fact]
    public void A_call_cut_by_shutdown_while_the_client_waits_is_told_to_go_elsewhere()
    {
        foreach (var cause in new Exception[] { new RpcException(new Status(StatusCode.Cancelled, "")), new OperationCanceledException(), new IOException() })
        {
            var status = For(cause, stopping: true);

            Assert.Equal(StatusCode.Unavailable, status.StatusCode);
            Assert.Equal("etcdshield: shutting down", status.Status.Detail);
        }
    }

    [Fact]
    public void A_call_whose_client_left_ends_cancelled_even_during_shutdown()
    {
        foreach (var cause in new Exception[] { new OperationCanceledException(), new IOException(), new InvalidOperationException("writer completed") })
        {
            var status = For(cause, stopping: true, clientGone: true);

            Assert.Equal(StatusCode.Cancelled, status.StatusCode);
            Assert.Equal("context canceled", status.Status.Detail);
        }
    }

    [Fact]
    public void A_bare_io_failure_is_the_client_leaving_before_its_token_says_so()
    {
        var status = For(new IOException("The client reset the request stream."));

        Assert.Equal(StatusCode.Cancelled, status.StatusCode);
        Assert.Equal("context canceled", status.Status.Detail);
    }

    [Fact]
    public void Anything_else_is_internal_and_names_nothing()
    {
        var status = For(new FormatException("secret detail /registry/secrets/x"));

        Assert.Equal(StatusCode.Internal, status.StatusCode);
        Assert.Equal("etcdshield: internal error", status.Status.Detail);
    }

    [Fact]
    public void A_cancellation_while_the_client_still_waits_and_the_proxy_runs_is_a_failure_of_the_proxy()
    {
        Assert.Equal(StatusCode.Internal, For(new OperationCanceledException()).StatusCode);
    }
}
