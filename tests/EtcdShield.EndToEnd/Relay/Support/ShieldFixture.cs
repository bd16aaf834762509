using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// One plain etcd and one EtcdShield in front of it, shared by the tests of a class (each test keeps to its
/// own keys). Subclasses choose the proxy's extra flags.
/// </summary>
public abstract class ShieldFixture : IAsyncLifetime
{
    private EtcdProcess? etcd;
    private ShieldServer? shield;

    public TestPki Pki { get; } = new();

    internal EtcdProcess Etcd => etcd ?? throw new InvalidOperationException("Not started.");

    internal ShieldServer Shield => shield ?? throw new InvalidOperationException("Not started.");

    /// <summary>etcdctl talking to etcd directly, to see what really reached it.</summary>
    internal Etcdctl EtcdDirectly => new(Etcd.ClientUrl);

    /// <summary>etcdctl through the proxy with the default allowed client certificate.</summary>
    internal Etcdctl ThroughProxy => Shield.Etcdctl(Pki);

    protected virtual bool Encrypt => true;

    protected virtual IEnumerable<string> Flags => [];

    private protected virtual EtcdOptions EtcdOptions => new();

    public async Task InitializeAsync()
    {
        etcd = await EtcdProcess.StartAsync(EtcdOptions);
        shield = await ShieldServer.StartAsync(Pki, etcd.ClientUrl, Encrypt, Flags);
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (shield is not null)
            {
                await shield.DisposeAsync();
            }
        }
        finally
        {
            if (etcd is not null)
            {
                await etcd.DisposeAsync();
            }

            Pki.Dispose();
        }
    }
}
