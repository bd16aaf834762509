using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.Reflection;

namespace EtcdShield.Relay;

/// <summary>
/// Keeps etcd's own client URLs from reaching clients: every member in a Cluster answer is reported with the
/// proxy's advertised URLs, so clients that sync endpoints (clientv3's AutoSyncInterval, etcdctl --cluster)
/// keep talking through the proxy instead of bypassing it.
/// </summary>
internal sealed class MemberUrlHandler : IUnaryHandler
{
    public static readonly IReadOnlyList<MethodDescriptor> Methods =
        [.. new[] { "MemberList", "MemberAdd", "MemberRemove", "MemberUpdate", "MemberPromote" }.Select(Cluster.Descriptor.FindMethodByName)];

    private readonly IReadOnlyList<string> _advertised;

    public MemberUrlHandler(IEnumerable<Uri> advertiseClientUrls) =>
        _advertised = advertiseClientUrls.Select(u => u.GetLeftPart(UriPartial.Authority)).ToList();

    public async Task<IMessage> HandleAsync(IMessage request, RelayCall call)
    {
        var response = await call.ForwardUnaryAsync(request).ConfigureAwait(false);
        switch (response)
        {
            case MemberListResponse list:
                Rewrite(list.Members);
                break;
            case MemberAddResponse add:
                Rewrite(add.Members);
                if (add.Member is not null)
                {
                    Rewrite(add.Member.ClientURLs);
                }

                break;
            case MemberRemoveResponse remove:
                Rewrite(remove.Members);
                break;
            case MemberUpdateResponse update:
                Rewrite(update.Members);
                break;
            case MemberPromoteResponse promote:
                Rewrite(promote.Members);
                break;
        }

        return response;
    }

    private void Rewrite(RepeatedField<Member> members)
    {
        foreach (var member in members)
        {
            Rewrite(member.ClientURLs);
        }
    }

    private void Rewrite(RepeatedField<string> clientUrls)
    {
        // A member that has not started yet has no client URLs; it stays that way.
        if (clientUrls.Count > 0)
        {
            clientUrls.Clear();
            clientUrls.Add(_advertised);
        }
    }
}
