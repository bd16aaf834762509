using EtcdShield.Configuration;

namespace EtcdShield.Tests.Configuration;

public sealed class UpstreamUrlsTests
{
    [Theory]
    [InlineData("unix:///run/etcd/client.sock", "/run/etcd/client.sock")]
    [InlineData("unixs:///run/etcd/Client%20A.sock", "/run/etcd/Client A.sock")]
    [InlineData("unix://localhost:2379", "localhost:2379")]
    [InlineData("unixs://Etcd.Sock:12379", "Etcd.Sock:12379")]
    public void A_unix_endpoint_names_its_socket_file_as_written(string text, string path)
    {
        var uri = UpstreamUrls.Parse("upstream-endpoints", text);

        Assert.True(UpstreamUrls.IsUnixSocket(uri));
        Assert.Equal(path, UpstreamUrls.SocketPath(uri));
    }

    [Theory]
    [InlineData("http://127.0.0.1:2379", false)]
    [InlineData("https://127.0.0.1:2379", true)]
    [InlineData("unix:///run/etcd.sock", false)]
    [InlineData("unixs:///run/etcd.sock", true)]
    public void Https_and_unixs_use_tls(string text, bool tls) =>
        Assert.Equal(tls, UpstreamUrls.UsesTls(UpstreamUrls.Parse("upstream-endpoints", text)));

    [Theory]
    [InlineData("unixs://localhost:2379", "localhost")]
    [InlineData("unixs:///run/etcd.sock", "localhost")]
    [InlineData("https://etcd-0.example:2379", "etcd-0.example")]
    public void The_tls_host_name_is_the_host_or_localhost_for_a_socket_path(string text, string host) =>
        Assert.Equal(host, UpstreamUrls.TlsHostName(UpstreamUrls.Parse("upstream-endpoints", text)));

    [Theory]
    [InlineData("unix://etcd")]
    [InlineData("unix://etcd:port")]
    [InlineData("unix://dir/etcd:2379")]
    [InlineData("unix:relative")]
    [InlineData("unix:///")]
    [InlineData("tcp://127.0.0.1:2379")]
    [InlineData("http://127.0.0.1:2379/v3")]
    [InlineData("127.0.0.1:2379")]
    public void Anything_else_is_refused_naming_the_flag_and_the_forms(string text)
    {
        var error = Assert.Throws<ConfigurationException>(() => UpstreamUrls.Parse("upstream-endpoints", text));

        Assert.Contains("--upstream-endpoints", error.Message, StringComparison.Ordinal);
        Assert.Contains("unix:///", error.Message, StringComparison.Ordinal);
    }
}
