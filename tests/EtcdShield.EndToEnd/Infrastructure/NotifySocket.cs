using System.Net.Sockets;
using System.Text;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>What systemd's <c>$NOTIFY_SOCKET</c> is for a Type=notify service: a datagram socket its messages arrive on.</summary>
internal sealed class NotifySocket : IDisposable
{
    private readonly Socket socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);

    public NotifySocket(string path)
    {
        Path = path;
        socket.Bind(new UnixDomainSocketEndPoint(path));
    }

    public string Path { get; }

    /// <summary>The next datagram, waiting for it up to <paramref name="timeout"/>.</summary>
    public async Task<string> NextAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        try
        {
            var received = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
            return Encoding.UTF8.GetString(buffer, 0, received);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No notification on {Path} within {timeout.TotalSeconds:0.#} s");
        }
    }

    /// <summary>Waits for a datagram with the line <paramref name="assignment"/> (e.g. <c>READY=1</c>).</summary>
    public async Task WaitForAsync(string assignment, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        var seen = new List<string>();
        try
        {
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
                var message = Encoding.UTF8.GetString(buffer, 0, received);
                seen.Add(message);
                if (message.Split('\n').Contains(assignment, StringComparer.Ordinal))
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No {assignment} on {Path} within {timeout.TotalSeconds:0.#} s; received: [{string.Join(" | ", seen)}]");
        }
    }

    public void Dispose() => socket.Dispose();
}
