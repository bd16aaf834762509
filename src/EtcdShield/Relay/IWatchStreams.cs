using EtcdShield.Streams;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// Serves a client's watch stream from watches the proxy shares between streams (<c>Watches</c>), instead of a
/// one-to-one relay. The relay has begun the call, authorized the stream and counted it against the limits; the
/// session judges each watch and answers every request as etcd would.
/// </summary>
internal interface IWatchStreams
{
    IWatchSession Open(CallScope scope, OpenStream open, IAsyncStreamReader<IMessage> requests, IServerStreamWriter<IMessage> responses);
}

/// <summary>One client watch stream served from shared watches.</summary>
internal interface IWatchSession : IAsyncDisposable
{
    /// <summary>Why the session ended the stream (a refusal, an upstream failure, a value that could not be opened), or null.</summary>
    Exception? Failure { get; }

    /// <summary>Serves the stream until the client goes, the call is ended, or the session fails (then it throws).</summary>
    Task RunAsync();
}
