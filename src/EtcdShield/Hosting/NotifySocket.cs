using System.Net.Sockets;
using System.Text;

namespace EtcdShield.Hosting;

/// <summary>
/// The sender side of the service manager notification protocol (sd_notify): one datagram of newline-separated
/// <c>NAME=value</c> assignments to the unix datagram socket named by <c>NOTIFY_SOCKET</c>, an absolute path or,
/// starting with '@', an abstract socket. Whoever sets the variable listens (systemd for Type=notify, but also
/// any supervisor or test), as for etcd.
/// </summary>
internal sealed class NotifySocket
{
    public const string Variable = "NOTIFY_SOCKET";

    private readonly UnixDomainSocketEndPoint _endpoint;

    /// <exception cref="ArgumentException">The address is neither an absolute path nor an abstract name.</exception>
    public NotifySocket(string address)
    {
        ArgumentException.ThrowIfNullOrEmpty(address);
        Address = address;
        if (address.StartsWith('@'))
        {
            // The kernel's abstract namespace: a leading NUL instead of the '@' in the variable.
            _endpoint = new UnixDomainSocketEndPoint("\0" + address[1..]);
        }
        else if (Path.IsPathRooted(address))
        {
            _endpoint = new UnixDomainSocketEndPoint(address);
        }
        else
        {
            throw new ArgumentException($"{Variable} {address} is neither an absolute path nor an abstract socket name (@name)", nameof(address));
        }
    }

    public string Address { get; }

    /// <summary>The socket of this process's environment, or null when the variable is unset or empty.</summary>
    public static string? AddressFromEnvironment() =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } address ? address : null;

    /// <summary>One notification: the assignments in order, one a line; a value may not hold a newline.</summary>
    public static string Message(params IEnumerable<(string Name, string Value)> assignments)
    {
        var message = new StringBuilder();
        foreach (var (name, value) in assignments)
        {
            if (value.Contains('\n', StringComparison.Ordinal))
            {
                throw new ArgumentException($"the value of {name} holds a newline", nameof(assignments));
            }

            message.Append(name).Append('=').Append(value).Append('\n');
        }

        return message.ToString();
    }

    /// <summary>Sends one datagram; a missing or refusing listener is a <see cref="SocketException"/>.</summary>
    public void Send(string message)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.SendTo(Encoding.UTF8.GetBytes(message), _endpoint);
    }
}
