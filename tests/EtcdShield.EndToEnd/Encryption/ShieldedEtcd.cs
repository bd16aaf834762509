using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// A real etcd (the assembly's <see cref="SharedEtcd"/> unless the fixture needs its own) with an encrypting
/// EtcdShield in front of it, shared by the tests of one class: a channel to the proxy (what clients see) and a
/// plain channel straight to etcd (what is stored). Subclasses choose the etcd and proxy flags. Tests give
/// themselves their own key prefix with <see cref="NewPrefix"/>: other classes use the same etcd.
/// </summary>
public abstract class ShieldedEtcd : IAsyncLifetime
{
    private readonly List<GrpcChannel> _channels = [];
    private GrpcChannel? _proxy;
    private GrpcChannel? _direct;

    internal TestPki Pki { get; } = new();

    internal EtcdProcess Etcd { get; private set; } = null!;

    internal ShieldServer Shield { get; private set; } = null!;

    /// <summary>The counters <see cref="Shield"/> records, from its start on.</summary>
    internal ProxyMeters Meters { get; private set; } = null!;

    /// <summary>Through the proxy, with the allowed client certificate.</summary>
    internal GrpcChannel ProxyChannel => _proxy ?? throw new InvalidOperationException("The fixture has not started.");

    /// <summary>Straight to etcd: the raw stored bytes.</summary>
    internal GrpcChannel EtcdChannel => _direct ?? throw new InvalidOperationException("The fixture has not started.");

    internal KV.KVClient ProxyKv => new(ProxyChannel);

    internal KV.KVClient EtcdKv => new(EtcdChannel);

    /// <summary>Extra etcd flags, e.g. <c>--max-request-bytes</c>; with any, the fixture starts an etcd of its own.</summary>
    protected virtual IReadOnlyList<string> EtcdArguments => [];

    /// <summary>
    /// Whether the fixture needs an etcd of its own rather than <see cref="SharedEtcd"/>: for flags of its own, or to
    /// read etcd's server-wide counters.
    /// </summary>
    protected virtual bool OwnsEtcd => EtcdArguments.Count > 0;

    /// <summary>Extra proxy flags, appended after the defaults (which encrypt every key with a development key file).</summary>
    protected virtual IReadOnlyList<string> ShieldFlags => [];

    /// <summary>A key prefix no other test of the fixture uses: <c>/name-1a2b3c4d/</c>.</summary>
    internal static string NewPrefix(string name) => SharedEtcd.NewPrefix(name);

    /// <summary>Another channel to the proxy, e.g. one per concurrent client. Disposed with the fixture.</summary>
    internal GrpcChannel NewProxyChannel()
    {
        var channel = GrpcChannels.ToProxy(Shield, Pki);
        lock (_channels)
        {
            _channels.Add(channel);
        }

        return channel;
    }

    /// <summary>The raw bytes etcd holds for <paramref name="key"/>, read around the proxy; null when absent.</summary>
    internal async Task<ByteString?> StoredAsync(string key)
    {
        var response = await EtcdKv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) });
        return response.Kvs.Count == 0 ? null : response.Kvs[0].Value;
    }

    /// <summary>Writes <paramref name="value"/> straight into etcd, as someone with direct access could.</summary>
    internal async Task<long> PlantAsync(string key, ByteString value)
    {
        var response = await EtcdKv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = value });
        return response.Header.Revision;
    }

    /// <summary>Puts through the proxy.</summary>
    internal async Task<PutResponse> PutAsync(string key, string value, bool prevKv = false, long lease = 0) =>
        await ProxyKv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value), PrevKv = prevKv, Lease = lease });

    /// <summary>The value the proxy returns for <paramref name="key"/>, as text; null when absent.</summary>
    internal async Task<string?> GetAsync(string key)
    {
        var response = await ProxyKv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) });
        return response.Kvs.Count == 0 ? null : response.Kvs[0].Value.ToStringUtf8();
    }

    public async Task InitializeAsync()
    {
        Etcd = OwnsEtcd ? await EtcdProcess.StartAsync(new EtcdOptions { ExtraArguments = EtcdArguments }) : await SharedEtcd.GetAsync();
        Shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ShieldFlags);
        Meters = new ProxyMeters(Shield, EtcdShield.Encryption.EncryptionMetrics.MeterName, ProxyMeters.DecryptFailures, ProxyMeters.LegacyPlaintextReads);
        _proxy = GrpcChannels.ToProxy(Shield, Pki);
        _direct = GrpcChannels.ToEtcd(Etcd);
        await OnStartedAsync();
    }

    /// <summary>For fixtures that need more than one etcd and one proxy.</summary>
    protected virtual Task OnStartedAsync() => Task.CompletedTask;

    /// <summary>For fixtures that started more; called before the shared parts stop.</summary>
    protected virtual ValueTask OnStoppingAsync() => ValueTask.CompletedTask;

    public async Task DisposeAsync()
    {
        try
        {
            await OnStoppingAsync();
            lock (_channels)
            {
                foreach (var channel in _channels)
                {
                    channel.Dispose();
                }
            }

            _proxy?.Dispose();
            _direct?.Dispose();
            Meters?.Dispose();
            if (Shield is not null)
            {
                await Shield.DisposeAsync();
            }
        }
        finally
        {
            if (Etcd is not null && OwnsEtcd)
            {
                await Etcd.DisposeAsync();
            }

            Pki.Dispose();
        }
    }
}

/// <summary>etcd behind a proxy that encrypts every key with a development key file.</summary>
public sealed class EncryptingProxy : ShieldedEtcd
{
}
