using System.Net;
using System.Net.Sockets;

namespace EtcdShield.LoadGen.Infrastructure;

/// <summary>Loopback ports the kernel says are free right now; a server that loses the race is simply restarted.</summary>
internal static class FreePorts
{
    public static int[] Take(int count)
    {
        // Hold every listener until all are chosen so the same port is not handed out twice.
        var listeners = new List<TcpListener>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                listeners.Add(listener);
            }

            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Stop();
                listener.Dispose();
            }
        }
    }
}
