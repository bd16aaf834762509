using EtcdShield.Streams;

namespace EtcdShield.Hosting;

/// <summary>
/// On shutdown, open streams are ended with UNAVAILABLE as soon as the host starts stopping (see
/// <see cref="Relay.CallScopes"/>); this waits until they have ended before the server closes its connections, so
/// each client hears that status instead of a connection closed under its stream (<see cref="StreamResponses"/>:
/// until each stream's status is written, not only until its handler returned). Registered last, so stopped
/// first; bounded by the host's shutdown timeout.
/// </summary>
internal sealed class StreamShutdown : IHostedService
{
    private readonly OpenStreams _streams;
    private readonly StreamResponses _responses;

    public StreamShutdown(OpenStreams streams, StreamResponses responses)
    {
        _streams = streams;
        _responses = responses;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _streams.AllClosedAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            // Then until their statuses are on the wire: only after this does Kestrel begin closing connections.
            await _responses.AllCompletedAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout passed; the server ends what is left.
        }
    }
}
