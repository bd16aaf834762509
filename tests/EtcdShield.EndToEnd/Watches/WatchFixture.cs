using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Encryption;
using Google.Protobuf;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>The watch test classes: they share one etcd and its proxies, and run one after another.</summary>
/// <remarks>One after another because some watch every key from a revision on, and one compacts the whole store.</remarks>
[CollectionDefinition(Name)]
public sealed class WatchEtcd : ICollectionFixture<WatchFixture>
{
    public const string Name = "Watches";
}

/// <summary>
/// One etcd of the collection's own and, per watch mode (<see cref="WatchSharing"/>), one encrypting proxy in front of
/// it, started when a test first asks for that mode. Every proxy uses the same development key, so a value written
/// through one opens through any, and the tests can open what a direct etcd watch delivers to compare plaintext.
/// etcd and the proxies run with a small <c>--max-request-bytes</c> so fragmented watch responses are cheap to make.
/// </summary>
public sealed class WatchFixture : IAsyncLifetime
{
    /// <summary>etcd's and the proxies' --max-request-bytes.</summary>
    public const int MaxRequestBytes = 64 * 1024;

    /// <summary>
    /// The size from which etcd splits a watch response for a watch that asked for fragments: not --max-request-bytes
    /// itself but that plus gRPC's overhead allowance of 512 KiB (v3rpc's watch server takes
    /// <c>MaxRequestBytes + grpcOverheadBytes</c>). Each fragment but a single-event one stays below it.
    /// </summary>
    public const int FragmentBytes = MaxRequestBytes + 512 * 1024;

    private readonly Dictionary<string, Task<Proxy>> proxies = [];
    private EtcdProcess? etcd;
    private GrpcChannel? direct;

    /// <summary>The modes of this build, for <c>[MemberData]</c>.</summary>
    public static TheoryData<string> Modes => new(WatchSharing.Modes);

    internal TestPki Pki { get; } = new();

    internal string KeyFile { get; private set; } = "";

    internal EtcdProcess Etcd => etcd ?? throw new InvalidOperationException("Not started.");

    /// <summary>Straight to etcd, plain HTTP.</summary>
    internal GrpcChannel Direct => direct ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync()
    {
        KeyFile = ShieldServer.WriteDevelopmentKey(Pki.Directory);
        etcd = await EtcdProcess.StartAsync(new EtcdOptions { ExtraArguments = [$"--max-request-bytes={MaxRequestBytes}"] });
        direct = GrpcChannels.ToEtcd(etcd);
    }

    /// <summary>The proxy of <paramref name="mode"/>, started on first use.</summary>
    internal Task<Proxy> ProxyAsync(string mode)
    {
        lock (proxies)
        {
            if (!proxies.TryGetValue(mode, out var proxy))
            {
                proxy = StartProxyAsync(mode, []);
                proxies.Add(mode, proxy);
            }

            return proxy;
        }
    }

    /// <summary>A proxy of the test's own in <paramref name="mode"/> over the collection's etcd, with more flags; the test disposes it.</summary>
    internal async Task<Proxy> StartProxyAsync(string mode, IEnumerable<string> flags) =>
        new(await ShieldServer.StartAsync(
            Pki,
            Etcd.ClientUrl,
            flags: ["--encryption-key-file", KeyFile, "--max-request-bytes", $"{MaxRequestBytes}", .. WatchSharing.Flags(mode), .. flags]), Pki);

    public async Task DisposeAsync()
    {
        try
        {
            foreach (var proxy in proxies.Values)
            {
                await (await proxy).DisposeAsync();
            }
        }
        finally
        {
            direct?.Dispose();
            if (etcd is not null)
            {
                await etcd.DisposeAsync();
            }

            Pki.Dispose();
        }
    }

    /// <summary>One proxy, a channel to it with the administrator certificate, and its value opener.</summary>
    internal sealed class Proxy(ShieldServer shield, TestPki pki) : IAsyncDisposable
    {
        private readonly IValueProtector protector = shield.Services.GetRequiredService<IValueProtector>();

        public ShieldServer Shield { get; } = shield;

        public GrpcChannel Channel { get; } = GrpcClients.Channel(shield.ClientUrl, pki);

        /// <summary>A channel of its own (its own HTTP/2 connection), presenting <paramref name="client"/> or the administrator.</summary>
        public GrpcChannel NewChannel(CertificatePaths? client = null) => GrpcClients.Channel(Shield.ClientUrl, pki, client);

        /// <summary>The plaintext of a value as etcd stores it (an envelope this proxy's key opens).</summary>
        public async ValueTask<ByteString> OpenAsync(ByteString key, ByteString stored) =>
            await protector.UnprotectAsync(key, stored, default, CancellationToken.None);

        public async ValueTask DisposeAsync()
        {
            Channel.Dispose();
            await Shield.DisposeAsync();
        }
    }
}

/// <summary>A test of what only shared watches promise (etcd 3.5's progress rule, which the relay inherits from etcd 3.4
/// without it): skipped while the proxy has no <c>--watch-sharing</c>.</summary>
public sealed class SharedWatchFactAttribute : FactAttribute
{
    public SharedWatchFactAttribute()
    {
        if (!WatchSharing.FlagKnown)
        {
            Skip = "this build of the proxy has no --watch-sharing";
        }
    }
}
