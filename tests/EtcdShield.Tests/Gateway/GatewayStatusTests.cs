using System.Text;
using EtcdShield.Gateway;
using Grpc.Core;

namespace EtcdShield.Tests.Gateway;

public sealed class GatewayStatusTests
{
    [Theory]
    [InlineData(StatusCode.InvalidArgument, 400)]
    [InlineData(StatusCode.FailedPrecondition, 400)]
    [InlineData(StatusCode.OutOfRange, 400)]
    [InlineData(StatusCode.Unauthenticated, 401)]
    [InlineData(StatusCode.PermissionDenied, 403)]
    [InlineData(StatusCode.NotFound, 404)]
    [InlineData(StatusCode.Cancelled, 408)]
    [InlineData(StatusCode.AlreadyExists, 409)]
    [InlineData(StatusCode.Aborted, 409)]
    [InlineData(StatusCode.ResourceExhausted, 429)]
    [InlineData(StatusCode.Unimplemented, 501)]
    [InlineData(StatusCode.Unavailable, 503)]
    [InlineData(StatusCode.DeadlineExceeded, 504)]
    [InlineData(StatusCode.Unknown, 500)]
    [InlineData(StatusCode.Internal, 500)]
    [InlineData(StatusCode.DataLoss, 500)]
    public void A_status_gets_grpc_gateways_http_status(StatusCode code, int http) => Assert.Equal(http, GatewayStatus.HttpStatusOf(code));

    [Fact]
    public void A_call_error_is_written_as_etcds_gateway_writes_it() =>
        Assert.Equal(
            """{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}""",
            Encoding.UTF8.GetString(GatewayStatus.CallError(new Status(StatusCode.NotFound, "etcdserver: requested lease not found"))));

    [Fact]
    public void A_stream_error_is_written_as_grpc_gateways_stream_error() =>
        Assert.Equal(
            """{"error":{"grpc_code":14,"http_code":503,"message":"etcdshield: etcd is unreachable","http_status":"Service Unavailable"}}""",
            Encoding.UTF8.GetString(GatewayStatus.StreamError(new Status(StatusCode.Unavailable, "etcdshield: etcd is unreachable"))));

    [Fact]
    public void Messages_are_escaped_as_go_escapes_them() =>
        Assert.Equal(
            """{"error":"key \u003c\u0026\u003e \"q\"","code":3,"message":"key \u003c\u0026\u003e \"q\""}""",
            Encoding.UTF8.GetString(GatewayStatus.CallError(new Status(StatusCode.InvalidArgument, "key <&> \"q\""))));
}
