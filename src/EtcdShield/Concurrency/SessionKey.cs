using System.Globalization;
using System.Text;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Concurrency;

/// <summary>
/// The key etcd's concurrency package (behind the Lock and Election services) gives a session in a lock or
/// election: <c>name + "/" + lease id</c>, the id printed by Go's <c>%x</c>. The proxy seals values for that key
/// before etcd stores them, so it accepts only leases for which it names the same key as etcd: for lease 0 etcd
/// grants a lease of its own (the key then ends in an id the proxy never saw) and Go prints a negative id as
/// <c>-5</c> where .NET prints two's complement.
/// </summary>
internal static class SessionKey
{
    /// <summary>The session key of <paramref name="lease"/>, which must have passed <see cref="RequireGrantedLease"/>.</summary>
    public static ByteString For(ByteString name, long lease)
    {
        var suffix = Encoding.ASCII.GetBytes("/" + lease.ToString("x", CultureInfo.InvariantCulture));
        var key = new byte[name.Length + suffix.Length];
        name.Span.CopyTo(key);
        suffix.CopyTo(key.AsSpan(name.Length));
        return UnsafeByteOperations.UnsafeWrap(key);
    }

    /// <param name="what">The request, for the message: <c>campaign</c>, <c>lock</c>.</param>
    /// <exception cref="RpcException">INVALID_ARGUMENT when <paramref name="lease"/> is not a lease id.</exception>
    public static void RequireGrantedLease(long lease, string what)
    {
        if (lease <= 0)
        {
            throw new RpcException(new Status(
                StatusCode.InvalidArgument,
                $"etcdshield: {what} needs the id of a lease granted to the caller, not {lease.ToString(CultureInfo.InvariantCulture)}"));
        }
    }

    /// <summary>Refuses a leader key that is not the session key of its own name and lease.</summary>
    /// <param name="what">The request, for the message: <c>proclaim</c>, <c>resign</c>.</param>
    /// <exception cref="RpcException">INVALID_ARGUMENT when the key or the lease does not match.</exception>
    public static void RequireLeaderKey(ByteString name, ByteString key, long lease, string what)
    {
        RequireGrantedLease(lease, what);
        if (!For(name, lease).Span.SequenceEqual(key.Span))
        {
            throw new RpcException(new Status(
                StatusCode.InvalidArgument,
                $"etcdshield: {what} needs the leader key a campaign returned: its key must be its name, \"/\" and its lease id in hex"));
        }
    }
}
