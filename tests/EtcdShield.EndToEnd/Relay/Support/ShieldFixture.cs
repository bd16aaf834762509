using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// A plain etcd (the assembly's <see cref="SharedEtcd"/> unless the fixture needs its own) and one EtcdShield in
/// front of it, shared by the tests of a class. Each test keeps to keys of its own, under a prefix no other class
/// uses. Subclasses choose the proxy's extra flags.
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

    /// <summary>etcd flags of the fixture's own; null runs on the shared etcd.</summary>
    private protected virtual EtcdOptions? EtcdOptions => null;

    /// <summary>Whether the fixture starts an etcd of its own: for flags of its own, or for tests over wide ranges.</summary>
    private protected virtual bool OwnsEtcd => EtcdOptions is not null;

    public async Task InitializeAsync()
    {
        etcd = OwnsEtcd ? await EtcdProcess.StartAsync(EtcdOptions) : await SharedEtcd.GetAsync();
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
            if (etcd is not null && OwnsEtcd)
            {
                await etcd.DisposeAsync();
            }

            Pki.Dispose();
        }
    }
}
