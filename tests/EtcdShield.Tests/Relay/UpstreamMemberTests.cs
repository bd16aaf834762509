using System.Net.Security;
using System.Net.Sockets;
using EtcdShield.Configuration;
using EtcdShield.Relay;

namespace EtcdShield.Tests.Relay;

public sealed class UpstreamMemberTests
{
    private static IReadOnlyList<UpstreamMember> Members(params string[] endpoints) =>
        UpstreamMember.From([.. endpoints.Select(e => UpstreamUrls.Parse("upstream-endpoints", e))]);

    [Fact]
    public void A_tcp_member_keeps_its_own_host_and_port_and_is_dialled_over_tcp()
    {
        var member = Assert.Single(Members("https://10.0.0.1:2379"));

        Assert.Equal("10.0.0.1:2379", member.Authority);
        Assert.Null(member.SocketPath);
        Assert.Equal("10.0.0.1", member.TlsHostName);
    }

    [Fact]
    public void Etcds_relative_form_names_its_file_and_its_certificate_by_name_and_port()
    {
        var member = Assert.Single(Members("unixs://Etcd-Client:2379"));

        Assert.Equal("Etcd-Client:2379", member.SocketPath);
        Assert.Equal("etcd-client", member.TlsHostName);
        Assert.Equal("etcd-client:2379", member.Authority);
    }

    [Fact]
    public void Absolute_socket_paths_are_localhost_each_with_an_authority_of_its_own()
    {
        var members = Members("unixs:///run/etcd/a.sock", "unixs:///run/etcd/b.sock", "unixs://localhost:1");

        Assert.Equal(["/run/etcd/a.sock", "/run/etcd/b.sock", "localhost:1"], members.Select(m => m.SocketPath));
        Assert.All(members, m => Assert.Equal("localhost", m.TlsHostName));
        Assert.Equal(3, members.Select(m => m.Authority).Distinct(StringComparer.OrdinalIgnoreCase).Count());
    }

    [Fact]
    public void A_socket_never_takes_the_authority_of_a_tcp_member()
    {
        var members = Members("https://localhost:2379", "unixs://localhost:2379");

        Assert.NotEqual(members[0].Authority, members[1].Authority);
        Assert.Same(members[0], UpstreamMember.Find(members, "localhost", 2379));
        Assert.Equal("localhost", members[1].TlsHostName);
    }

    [Fact]
    public void Find_matches_an_ipv6_member_without_brackets_and_nothing_else()
    {
        var members = Members("http://[::1]:2379", "unix:///run/etcd.sock");

        Assert.Same(members[0], UpstreamMember.Find(members, "::1", 2379));
        Assert.Same(members[1], UpstreamMember.Find(members, members[1].Host, members[1].Port));
        Assert.Null(UpstreamMember.Find(members, "::1", 2380));
    }

    [Fact]
    public async Task A_missing_socket_file_is_skipped_like_a_closed_port_and_the_live_socket_answers()
    {
        var directory = Directory.CreateTempSubdirectory("etcdshield-dialer-");
        try
        {
            var live = Path.Combine(directory.FullName, "live.sock");
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(live));
            listener.Listen();
            var dialer = new UpstreamDialer(new ShieldOptions
            {
                UpstreamEndpoints = [new Uri("unix://" + Path.Combine(directory.FullName, "missing.sock")), new Uri("unix://" + live)],
            });

            await using var stream = await dialer.ConnectAnyAsync(SslApplicationProtocol.Http2, CancellationToken.None);
            using var accepted = await listener.AcceptAsync();

            Assert.NotNull(accepted);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task With_no_socket_to_reach_the_failure_names_every_member()
    {
        var dialer = new UpstreamDialer(new ShieldOptions
        {
            UpstreamEndpoints = [new Uri("unix:///nonexistent/etcdshield/a.sock"), new Uri("unix:///nonexistent/etcdshield/b.sock")],
        });

        var failure = await Assert.ThrowsAsync<AggregateException>(async () => await dialer.ConnectAnyAsync(SslApplicationProtocol.Http2, CancellationToken.None));

        Assert.Equal(2, failure.InnerExceptions.Count);
        Assert.Contains("a.sock", failure.InnerExceptions[0].Message, StringComparison.Ordinal);
        Assert.Contains("b.sock", failure.InnerExceptions[1].Message, StringComparison.Ordinal);
    }
}
