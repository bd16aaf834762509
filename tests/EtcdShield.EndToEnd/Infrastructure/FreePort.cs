using System.Net;
using System.Net.Sockets;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>Picks loopback TCP ports that nothing is listening on.</summary>
/// <remarks>
/// The port is released before the caller binds it, so something else could take it in between. Ports come from
/// below the kernel's ephemeral range (<c>ip_local_port_range</c> starts at 32768 by default), where outgoing
/// connections (etcdctl, gRPC channels, Prometheus scrapes) never get their local port, and each port is handed out
/// once per test run; asking the kernel for port 0 instead collided with those connections in CI.
/// <see cref="EtcdProcess"/> still retries with fresh ports when it sees a collision.
/// </remarks>
internal static class FreePort
{
    private const int First = 20_000;
    private const int Last = 32_000;
    private static int _next = First + Random.Shared.Next(Last - First);

    public static int Allocate() => Allocate(1)[0];

    public static IReadOnlyList<int> Allocate(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var ports = new List<int>(count);
        for (var tried = 0; ports.Count < count; tried++)
        {
            if (tried == Last - First)
            {
                throw new InvalidOperationException($"no free loopback port between {First} and {Last}");
            }

            var port = First + ((Interlocked.Increment(ref _next) - First) % (Last - First));
            if (Bindable(port))
            {
                ports.Add(port);
            }
        }

        return ports;
    }

    private static bool Bindable(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
