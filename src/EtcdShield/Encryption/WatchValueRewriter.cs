using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Encryption;

/// <summary>
/// Watch: every event's kv and prev_kv opened as it passes, fragments included. A value that cannot be
/// opened ends the stream with DATA_LOSS rather than skipping the event, which a watcher could not notice.
/// </summary>
internal sealed class WatchValueRewriter : IStreamRewriter
{
    private readonly KeyValueOpener _opener;

    public WatchValueRewriter(KeyValueOpener opener) => _opener = opener;

    public async ValueTask<IMessage> RewriteResponseAsync(IMessage response, CancellationToken cancellationToken)
    {
        var watch = (WatchResponse)response;
        foreach (var change in watch.Events)
        {
            await _opener.OpenAsync(change.Kv, cancellationToken).ConfigureAwait(false);
            await _opener.OpenAsync(change.PrevKv, cancellationToken).ConfigureAwait(false);
        }

        return watch;
    }
}
