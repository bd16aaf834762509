using Google.Protobuf;

namespace EtcdShield.Relay;

/// <summary>
/// Rewrites the messages of a streaming method (Watch, Observe, KeepAlive, Snapshot) one at a time as they
/// pass; the stream itself stays a one-to-one relay of the client's stream.
/// </summary>
internal interface IStreamRewriter
{
    ValueTask<IMessage> RewriteRequestAsync(IMessage request, RelayCall call);

    ValueTask<IMessage> RewriteResponseAsync(IMessage response, RelayCall call);
}
