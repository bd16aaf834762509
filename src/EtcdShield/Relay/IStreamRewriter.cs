using Google.Protobuf;

namespace EtcdShield.Relay;

/// <summary>
/// Rewrites etcd's messages on a streaming method (Watch, Observe) one at a time as they pass; the stream itself
/// stays a one-to-one relay of the client's stream, and the client's messages go to etcd as they are. A shared
/// upstream watch (<c>Watches</c>) is opened once per upstream response for all its subscribers, outside any one
/// client's call, so the rewriter is given only the cancellation of whatever reads the response.
/// </summary>
internal interface IStreamRewriter
{
    ValueTask<IMessage> RewriteResponseAsync(IMessage response, CancellationToken cancellationToken);
}
