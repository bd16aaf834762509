using EtcdShield.LoadGen.Infrastructure;

namespace EtcdShield.LoadGen.Targets;

/// <summary>
/// One etcd that every target of the snapshot scenario reads: filling a database of a gigabyte once per run instead
/// of once per target keeps the run short, and a snapshot changes nothing in it, so no target inherits another's
/// state. It serves plaintext clients (the proxies and the fill) and mutual-TLS clients (the direct baseline) on two
/// listeners of the same process.
/// </summary>
internal sealed class SharedEtcd : IDisposable
{
    private readonly string _directory;

    public SharedEtcd(ServerProcess process, Uri plaintext, Uri mutualTls, string directory)
    {
        Process = process;
        Plaintext = plaintext;
        MutualTls = mutualTls;
        _directory = directory;
    }

    public ServerProcess Process { get; }

    public Uri Plaintext { get; }

    public Uri MutualTls { get; }

    public void Dispose()
    {
        Process.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // The run's data root is deleted at its end as well.
        }
    }
}
