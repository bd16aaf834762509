using System.Threading.Channels;

namespace EtcdShield.Streams;

/// <summary>
/// One stream counted against its identity's and connection's limits until it is disposed, and told when the
/// policy or the client trust changed so that it is judged again.
/// </summary>
internal sealed class OpenStream : IDisposable
{
    private readonly OpenStreams _owner;

    // Changes coalesce: a stream judged once after several reloads has seen them all.
    private readonly Channel<bool> _changes = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    public OpenStream(OpenStreams owner, string identity, string connection)
    {
        _owner = owner;
        Identity = identity;
        Connection = connection;
    }

    public string Identity { get; }

    public string Connection { get; }

    /// <summary>Waits until the policy or the client trust changed since the last wait returned.</summary>
    public async Task WaitForChangeAsync(CancellationToken cancellationToken) =>
        await _changes.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);

    internal void Changed() => _changes.Writer.TryWrite(true);

    public void Dispose() => _owner.Close(this);
}
