using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// One client Watch stream opened twice at the same time, straight to etcd and through the proxy, and given the same
/// requests in the same order: what the proxied one receives must be what etcd sends (<see cref="WatchTranscript"/>).
/// </summary>
internal sealed class TwinWatch : IAsyncDisposable
{
    private readonly WatchFixture.Proxy proxy;
    private readonly GrpcChannel? ownChannel;

    /// <param name="through">A channel to the proxy the twin then owns; null uses the proxy's shared channel.</param>
    public TwinWatch(GrpcChannel direct, WatchFixture.Proxy proxy, GrpcChannel? through = null)
    {
        this.proxy = proxy;
        ownChannel = through;
        Direct = new WatchSession(direct);
        Proxied = new WatchSession(through ?? proxy.Channel);
    }

    public WatchSession Direct { get; }

    public WatchSession Proxied { get; }

    public async Task SendAsync(WatchRequest request)
    {
        await Direct.SendAsync(request);
        await Proxied.SendAsync(request);
    }

    /// <summary>Sends a create and returns both answers (created, or created and canceled when refused).</summary>
    public async Task<(WatchResponse Direct, WatchResponse Proxied)> CreateAsync(WatchCreateRequest create)
    {
        await SendAsync(new WatchRequest { CreateRequest = create });
        return (await Direct.NextAsync(r => r.Created), await Proxied.NextAsync(r => r.Created));
    }

    /// <summary>Sends a cancel and returns both answers.</summary>
    public async Task<(WatchResponse Direct, WatchResponse Proxied)> CancelAsync(long watchId)
    {
        await SendAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = watchId } });
        return (await Direct.NextAsync(r => r.Canceled && r.WatchId == watchId), await Proxied.NextAsync(r => r.Canceled && r.WatchId == watchId));
    }

    /// <summary>Waits until both streams delivered, for every (watch id, revision) pair, an event at or after that
    /// revision (a closing write the watch sees), or the watch's cancel.</summary>
    public async Task WaitForAsync(IEnumerable<(long WatchId, long Revision)> marks)
    {
        var all = marks.ToList();
        foreach (var session in new[] { Direct, Proxied })
        {
            foreach (var (id, revision) in all)
            {
                if (!Reached(session, id, revision))
                {
                    await session.NextAsync(_ => Reached(session, id, revision), TimeSpan.FromSeconds(15));
                }
            }
        }
    }

    /// <summary>What each side received, rendered for comparison.</summary>
    public async Task<(WatchTranscript Direct, WatchTranscript Proxied)> TranscriptsAsync() =>
        (await WatchTranscript.ReadAsync(Direct.Received, proxy.OpenAsync), await WatchTranscript.ReadAsync(Proxied.Received, null));

    /// <summary>Compares both sides: every watch's events (fragments joined, values as plaintext) and, when
    /// <paramref name="controlHeaders"/>, the created and canceled answers header revision included.</summary>
    /// <returns>What etcd sent, for the test's own checks.</returns>
    public async Task<WatchTranscript> AssertSameAsync(bool controlHeaders = true)
    {
        var (direct, proxied) = await TranscriptsAsync();
        direct.AssertConsistent();
        proxied.AssertConsistent();
        WatchTranscript.AssertSameLines(direct.Control(controlHeaders), proxied.Control(controlHeaders), "created and canceled answers");
        Assert.Equal(direct.WatchIds, proxied.WatchIds);
        foreach (var id in direct.WatchIds)
        {
            WatchTranscript.AssertSameLines(direct.Events(id), proxied.Events(id), $"events of watch {id}");
        }

        return direct;
    }

    public async ValueTask DisposeAsync()
    {
        await Direct.DisposeAsync();
        await Proxied.DisposeAsync();
        ownChannel?.Dispose();
    }

    private static bool Reached(WatchSession session, long id, long revision) =>
        session.Received.Any(r => r.WatchId == id && (r.Canceled || r.Events.Any(e => e.Kv.ModRevision >= revision)));
}
