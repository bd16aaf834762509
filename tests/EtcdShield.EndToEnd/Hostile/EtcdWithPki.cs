using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// One etcd and one test PKI shared by the tests of a class that start their own proxies, each with the flags,
/// CA bundles, CRL files or audit paths its attack needs.
/// </summary>
public sealed class EtcdWithPki : IAsyncLifetime
{
    private EtcdProcess? etcd;

    public TestPki Pki { get; } = new();

    internal EtcdProcess Etcd => etcd ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => etcd = await EtcdProcess.StartAsync();

    public async Task DisposeAsync()
    {
        if (etcd is not null)
        {
            await etcd.DisposeAsync();
        }

        Pki.Dispose();
    }
}
