using System.Net.Sockets;
using System.Text;
using EtcdShield.Hosting;

namespace EtcdShield.Tests.Hosting;

public sealed class NotifySocketTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("etcdshield-notify-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_message_is_one_assignment_a_line_in_order()
    {
        var message = NotifySocket.Message(("READY", "1"), ("STATUS", "serving clients on https://127.0.0.1:2379/"), ("MAINPID", "42"));

        Assert.Equal("READY=1\nSTATUS=serving clients on https://127.0.0.1:2379/\nMAINPID=42\n", message);
    }

    [Fact]
    public void A_value_with_a_newline_is_refused_since_it_would_forge_another_assignment()
    {
        Assert.Throws<ArgumentException>(() => NotifySocket.Message(("STATUS", "a\nREADY=1")));
    }

    [Fact]
    public void It_sends_one_datagram_to_a_socket_file()
    {
        var path = Path.Combine(_directory, "notify");
        using var listener = Bind(new UnixDomainSocketEndPoint(path));

        new NotifySocket(path).Send("READY=1\n");

        Assert.Equal("READY=1\n", Receive(listener));
    }

    [Fact]
    public void It_sends_to_an_abstract_socket_named_with_an_at_sign()
    {
        var name = "etcdshield-test-" + Guid.NewGuid().ToString("N");
        using var listener = Bind(new UnixDomainSocketEndPoint("\0" + name));

        new NotifySocket("@" + name).Send("STOPPING=1\n");

        Assert.Equal("STOPPING=1\n", Receive(listener));
    }

    [Fact]
    public void A_relative_path_is_refused()
    {
        var refused = Assert.Throws<ArgumentException>(() => new NotifySocket("run/notify"));

        Assert.Contains("NOTIFY_SOCKET run/notify", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sending_where_nobody_listens_is_a_socket_exception()
    {
        var notify = new NotifySocket(Path.Combine(_directory, "nobody"));

        Assert.ThrowsAny<SocketException>(() => notify.Send("READY=1\n"));
    }

    internal static Socket Bind(UnixDomainSocketEndPoint endpoint)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(endpoint);
        return socket;
    }

    internal static string Receive(Socket socket)
    {
        var buffer = new byte[4096];
        socket.ReceiveTimeout = 10_000;
        var length = socket.Receive(buffer);
        return Encoding.UTF8.GetString(buffer, 0, length);
    }
}
