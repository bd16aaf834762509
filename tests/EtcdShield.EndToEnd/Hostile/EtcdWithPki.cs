using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// The shared etcd and one test PKI for the tests of a class that start their own proxies, each with the flags,
/// CA bundles, CRL files or audit paths its attack needs. Each class keeps to its own keys under hostile/, /hk/ or audit/.
/// </summary>
public sealed class EtcdWithPki : IAsyncLifetime
{
    private EtcdProcess? etcd;

    public TestPki Pki { get; } = new();

    internal EtcdProcess Etcd => etcd ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => etcd = await SharedEtcd.GetAsync();

    public Task DisposeAsync()
    {
        Pki.Dispose();
        return Task.CompletedTask;
    }
}
