using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Reload;
using EtcdShield.Tls;
using Grpc.Core;

namespace EtcdShield.Streams;

/// <summary>
/// Every stream open through this proxy process (Watch, LeaseKeepAlive, Observe, Snapshot): each holds an upstream
/// etcd stream, so an identity and a connection may hold only so many (RESOURCE_EXHAUSTED past the limit), and
/// each is judged again at once when the policy or the client trust (CAs, CRL) is reloaded. The per-identity count
/// is this process's: identities that reach several proxies are limited by each.
/// </summary>
internal sealed partial class OpenStreams
{
    private readonly Lock _lock = new();
    private readonly HashSet<OpenStream> _open = [];
    private readonly Dictionary<string, int> _byIdentity = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _byConnection = new(StringComparer.Ordinal);
    private readonly int _perIdentity;
    private readonly int _perConnection;
    private readonly ILogger _logger;
    private TaskCompletionSource? _allClosed;

    public OpenStreams(ShieldOptions options, ReloadableFiles<AccessPolicy> policy, ReloadableFiles<ClientTrust> trust, ILogger<OpenStreams> logger)
    {
        _perIdentity = options.MaxStreamsPerIdentity;
        _perConnection = options.MaxStreamsPerConnection;
        _logger = logger;
        policy.Reloaded += JudgeAgain;
        trust.Reloaded += JudgeAgain;
    }

    /// <summary>Counts a new stream of an admitted caller, or refuses it with RESOURCE_EXHAUSTED when a limit is reached.</summary>
    public OpenStream Open(Caller caller, string connection)
    {
        var identity = caller.Name;
        lock (_lock)
        {
            var onConnection = _byConnection.GetValueOrDefault(connection);
            if (onConnection >= _perConnection)
            {
                throw Exhausted(caller, $"identity \"{identity}\" already has {onConnection} streams open on this connection (--max-streams-per-connection {_perConnection})");
            }

            var ofIdentity = _byIdentity.GetValueOrDefault(identity);
            if (ofIdentity >= _perIdentity)
            {
                throw Exhausted(caller, $"identity \"{identity}\" already has {ofIdentity} streams open (--max-streams-per-identity {_perIdentity})");
            }

            var stream = new OpenStream(this, identity, connection);
            _open.Add(stream);
            _byConnection[connection] = onConnection + 1;
            _byIdentity[identity] = ofIdentity + 1;
            return stream;
        }
    }

    internal void Close(OpenStream stream)
    {
        lock (_lock)
        {
            if (!_open.Remove(stream))
            {
                return;
            }

            Decrement(_byConnection, stream.Connection);
            Decrement(_byIdentity, stream.Identity);
            if (_open.Count == 0)
            {
                _allClosed?.TrySetResult();
                _allClosed = null;
            }
        }
    }

    /// <summary>
    /// Open streams per identity, and on the busiest connection, for the metrics (copied under the lock: linear in the
    /// identities and connections holding a stream, each bounded by the policy and by Kestrel).
    /// </summary>
    public (KeyValuePair<string, int>[] ByIdentity, int BusiestConnection) Usage()
    {
        lock (_lock)
        {
            return ([.. _byIdentity], _byConnection.Count == 0 ? 0 : _byConnection.Values.Max());
        }
    }

    /// <summary>Completes when no stream is open (at once if none is).</summary>
    public Task AllClosedAsync()
    {
        lock (_lock)
        {
            if (_open.Count == 0)
            {
                return Task.CompletedTask;
            }

            _allClosed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _allClosed.Task;
        }
    }

    private static void Decrement(Dictionary<string, int> counts, string key)
    {
        var left = counts[key] - 1;
        if (left == 0)
        {
            counts.Remove(key);
        }
        else
        {
            counts[key] = left;
        }
    }

    private void JudgeAgain()
    {
        OpenStream[] open;
        lock (_lock)
        {
            open = [.. _open];
        }

        foreach (var stream in open)
        {
            stream.Changed();
        }
    }

    private RpcException Exhausted(Caller caller, string reason)
    {
        Log.StreamLimitReached(_logger, caller.Peer, caller.Name, reason);
        return new RpcException(new Status(StatusCode.ResourceExhausted, $"etcdshield: too many open streams: {reason}"));
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.StreamLimitReached, EventName = nameof(EventIds.StreamLimitReached), Level = LogLevel.Warning, Message = "Refused a stream of {Peer} ({Identity}): {Reason}")]
        public static partial void StreamLimitReached(ILogger logger, string peer, string identity, string reason);
    }
}
