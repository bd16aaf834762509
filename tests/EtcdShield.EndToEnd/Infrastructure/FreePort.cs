using System.Net;
using System.Net.Sockets;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>Picks loopback TCP ports that nothing is listening on.</summary>
/// <remarks>
/// The port is released before the caller binds it, so another process could take it in between.
/// That window is small and the kernel hands out ephemeral ports in a spread-out order, so a
/// collision is rare; <see cref="EtcdProcess"/> retries with fresh ports when it sees one.
/// </remarks>
internal static class FreePort
{
    public static int Allocate() => Allocate(1)[0];

    public static IReadOnlyList<int> Allocate(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);

        // Every socket stays bound until all are chosen, so one batch never contains the same port twice.
        var listeners = new List<TcpListener>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listeners.Add(listener);
                listener.Start();
            }

            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Dispose();
            }
        }
    }
}
