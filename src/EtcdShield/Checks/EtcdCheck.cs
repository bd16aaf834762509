using EtcdShield.Configuration;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Checks;

/// <summary>
/// etcd answers through the channel the proxy relays on (<see cref="UpstreamChannel"/>: the same endpoints, unix
/// sockets and TLS): its version and leader, and the members with the client URLs they give out. The member that
/// answered is the one this proxy fronts, so its client URLs should be this proxy's --advertise-client-urls: any
/// other URL is a way to etcd that does not pass through the proxy.
/// </summary>
internal static class EtcdCheck
{
    public const string Name = "etcd";

    public static async Task RunAsync(ShieldOptions options, CheckReport report, CancellationToken cancellationToken)
    {
        UpstreamChannel channel;
        try
        {
            channel = new UpstreamChannel(options, NullLoggerFactory.Instance);
        }
        catch (ConfigurationException e)
        {
            report.Fail(Name, $"{e.Message}; fix the --upstream-* flags");
            return;
        }

        using (channel)
        {
            var endpoints = string.Join(",", options.UpstreamEndpoints);
            StatusResponse status;
            MemberListResponse members;
            try
            {
                status = await new Maintenance.MaintenanceClient(channel.Invoker)
                    .StatusAsync(new StatusRequest(), cancellationToken: cancellationToken).ConfigureAwait(false);
                members = await new Cluster.ClusterClient(channel.Invoker)
                    .MemberListAsync(new MemberListRequest(), cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
            {
                report.Fail(Name, $"etcd at --upstream-endpoints {endpoints} does not answer ({e.StatusCode}: {e.Status.Detail}); start etcd, or fix --upstream-endpoints and the --upstream-* TLS flags");
                return;
            }

            var answering = status.Header.MemberId;
            var leader = status.Leader == 0 ? "no leader" : $"leader {status.Leader:x16}";
            report.Ok(Name, $"etcd {status.Version} at {endpoints} answers: member {answering:x16}, {leader}, raft term {status.RaftTerm}, {members.Members.Count} member(s)");
            if (status.Leader == 0)
            {
                report.Fail(Name, "the cluster has no leader, so writes fail; check that a quorum of members runs");
            }

            // Alarms among them: NOSPACE refuses every write until the space is freed and the alarm disarmed.
            foreach (var error in status.Errors)
            {
                report.Fail(Name, $"etcd reports: {error}; see etcd's log, and for an alarm etcdctl alarm list");
            }

            foreach (var member in members.Members)
            {
                Member(options, member, member.ID == answering, report);
            }
        }
    }

    private static void Member(ShieldOptions options, Member member, bool fronted, CheckReport report)
    {
        const string name = "etcd-member";
        var urls = member.ClientURLs.Count == 0 ? "no client URLs" : string.Join(",", member.ClientURLs);
        var who = $"{(member.Name.Length == 0 ? "(unstarted)" : member.Name)} {member.ID:x16}{(member.IsLearner ? " (learner)" : "")}";
        var advertised = options.AdvertiseClientUrls.Count > 0 ? options.AdvertiseClientUrls : options.ListenClientUrls;
        var bypassing = member.ClientURLs.Where(url => !advertised.Any(a => SameEndpoint(a, url))).ToList();
        if (fronted && bypassing.Count > 0)
        {
            report.Warn(name, $"{who} (the member this proxy fronts) gives clients {string.Join(",", bypassing)}, not one of --advertise-client-urls, so clients could bypass the proxy; set etcd's --advertise-client-urls to {string.Join(",", advertised)}");
        }
        else
        {
            report.Ok(name, $"{who}{(fronted ? " (fronted by this proxy)" : "")}: client URLs {urls}");
        }
    }

    private static bool SameEndpoint(Uri advertised, string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var other)
        && Uri.Compare(advertised, other, UriComponents.SchemeAndServer, UriFormat.SafeUnescaped, StringComparison.OrdinalIgnoreCase) == 0;
}
