using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// etcd 3.4's key-value store, in memory (the model is etcd's mvcc and etcdserver/apply.go): one revision counter
/// that a write raises once however many keys it changes, every key's history (so a range at a past revision
/// answers what was there), create_revision, mod_revision and version as etcd keeps them, and Range, Put,
/// DeleteRange and Txn with etcd's rules for range_end, limit, sort, count, more, prev_kv and compares. Leases
/// are stored as given (not granted or expired); compaction, auth and watches are not modelled.
/// </summary>
internal sealed class EtcdKvStore
{
    private const ulong ClusterId = 0x1000;
    private const ulong MemberId = 0x2000;
    private const ulong RaftTerm = 2;

    private static readonly Comparer<ByteString> KeyOrder = Comparer<ByteString>.Create(Order);

    private readonly Lock _lock = new();

    /// <summary>Every key's versions in revision order; a deletion is a tombstone (version 0).</summary>
    private readonly SortedDictionary<ByteString, List<KeyValue>> _history = new(KeyOrder);

    private long _revision = 1;

    /// <summary>The store's current revision; etcd starts at 1.</summary>
    public long Revision
    {
        get
        {
            lock (_lock)
            {
                return _revision;
            }
        }
    }

    /// <summary>The key as stored now (a copy), or null when it does not exist.</summary>
    public KeyValue? Get(string key)
    {
        lock (_lock)
        {
            return Latest(ByteString.CopyFromUtf8(key), _revision)?.Clone();
        }
    }

    /// <summary>A plain write, as another etcd client would make it.</summary>
    public long Put(string key, ByteString value) =>
        Put(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = value }).Header.Revision;

    public long Put(string key, string value) => Put(key, ByteString.CopyFromUtf8(value));

    public long Delete(string key) =>
        DeleteRange(new DeleteRangeRequest { Key = ByteString.CopyFromUtf8(key) }).Header.Revision;

    public RangeResponse Range(RangeRequest request)
    {
        lock (_lock)
        {
            var response = Range(request, _revision);
            response.Header = Header();
            return response;
        }
    }

    public PutResponse Put(PutRequest request)
    {
        lock (_lock)
        {
            var write = new Write(this);
            var response = Put(request, write);
            write.Commit();
            response.Header = Header();
            return response;
        }
    }

    public DeleteRangeResponse DeleteRange(DeleteRangeRequest request)
    {
        lock (_lock)
        {
            var write = new Write(this);
            var response = DeleteRange(request, write);
            write.Commit();
            response.Header = Header();
            return response;
        }
    }

    /// <summary>
    /// etcd 3.4's txn: every compare, nested ones included, decided against the store as it was before any op
    /// (compareToPath), then the chosen ops run in order in one write, each seeing the writes before it.
    /// </summary>
    public TxnResponse Txn(TxnRequest request)
    {
        lock (_lock)
        {
            var path = new Queue<bool>();
            DecidePath(request, _revision, path);
            var write = new Write(this);
            TxnResponse response;
            try
            {
                response = Txn(request, path, write);
            }
            catch (RpcException)
            {
                // etcd checks a txn's ops before applying any; a refusal here must leave nothing behind either.
                write.Undo();
                throw;
            }

            write.Commit();
            response.Header = Header();
            return response;
        }
    }

    private ResponseHeader Header() => new() { ClusterId = ClusterId, MemberId = MemberId, Revision = _revision, RaftTerm = RaftTerm };

    private void DecidePath(TxnRequest txn, long revision, Queue<bool> path)
    {
        var succeeded = txn.Compare.All(c => Holds(c, revision));
        path.Enqueue(succeeded);
        foreach (var op in succeeded ? txn.Success : txn.Failure)
        {
            if (op.RequestTxn is { } nested)
            {
                DecidePath(nested, revision, path);
            }
        }
    }

    private TxnResponse Txn(TxnRequest txn, Queue<bool> path, Write write)
    {
        var succeeded = path.Dequeue();
        // A nested txn's answer carries an empty header; only the outermost gets the revision.
        var response = new TxnResponse { Succeeded = succeeded, Header = new ResponseHeader() };
        foreach (var op in succeeded ? txn.Success : txn.Failure)
        {
            response.Responses.Add(op.RequestCase switch
            {
                RequestOp.RequestOneofCase.RequestRange => new ResponseOp { ResponseRange = Range(op.RequestRange, write.ReadRevision) },
                RequestOp.RequestOneofCase.RequestPut => new ResponseOp { ResponsePut = Put(op.RequestPut, write) },
                RequestOp.RequestOneofCase.RequestDeleteRange => new ResponseOp { ResponseDeleteRange = DeleteRange(op.RequestDeleteRange, write) },
                RequestOp.RequestOneofCase.RequestTxn => new ResponseOp { ResponseTxn = Txn(op.RequestTxn, path, write) },
                _ => throw new RpcException(new Status(StatusCode.InvalidArgument, "etcdserver: key not found")),
            });
        }

        return response;
    }

    /// <summary>applyCompare: a compare over no key is false for VALUE and compares a zero key-value otherwise; over keys, each must hold.</summary>
    private bool Holds(Compare compare, long revision)
    {
        var kvs = Live(compare.Key, compare.RangeEnd, revision);
        if (kvs.Count == 0)
        {
            return compare.Target != CompareTarget.Value && Holds(compare, new KeyValue());
        }

        return kvs.All(kv => Holds(compare, kv));
    }

    private static bool Holds(Compare compare, KeyValue kv)
    {
        var order = compare.Target switch
        {
            CompareTarget.Value => Order(kv.Value, compare.Value),
            CompareTarget.Version => kv.Version.CompareTo(compare.Version),
            CompareTarget.Create => kv.CreateRevision.CompareTo(compare.CreateRevision),
            CompareTarget.Mod => kv.ModRevision.CompareTo(compare.ModRevision),
            CompareTarget.Lease => kv.Lease.CompareTo(compare.Lease),
            _ => 0,
        };
        return compare.Result switch
        {
            CompareResult.Equal => order == 0,
            CompareResult.NotEqual => order != 0,
            CompareResult.Greater => order > 0,
            CompareResult.Less => order < 0,
            _ => false,
        };
    }

    /// <summary>
    /// applyRange: with a sort order or a revision filter every matching key is read, otherwise limit + 1; a
    /// sort target other than KEY without an order sorts ascending; the limit is applied after sorting and
    /// <c>more</c> says it cut something; <c>count</c> is every key in the range, filters and limit aside.
    /// </summary>
    private RangeResponse Range(RangeRequest request, long current)
    {
        RequireKey(request.Key);
        var revision = request.Revision;
        if (revision > current)
        {
            throw new RpcException(new Status(StatusCode.OutOfRange, "etcdserver: mvcc: required revision is a future revision"));
        }

        if (revision <= 0)
        {
            revision = current;
        }

        var all = Live(request.Key, request.RangeEnd, revision);
        var response = new RangeResponse { Header = new ResponseHeader { Revision = current }, Count = all.Count };
        if (request.CountOnly)
        {
            return response;
        }

        var readsAll = request.SortOrder != SortOrder.None ||
            request.MinModRevision != 0 || request.MaxModRevision != 0 ||
            request.MinCreateRevision != 0 || request.MaxCreateRevision != 0;
        IEnumerable<KeyValue> kvs = readsAll || request.Limit <= 0 ? all : all.Take((int)Math.Min(request.Limit + 1, int.MaxValue));
        kvs = kvs.Where(kv =>
            (request.MaxModRevision == 0 || kv.ModRevision <= request.MaxModRevision) &&
            (request.MinModRevision == 0 || kv.ModRevision >= request.MinModRevision) &&
            (request.MaxCreateRevision == 0 || kv.CreateRevision <= request.MaxCreateRevision) &&
            (request.MinCreateRevision == 0 || kv.CreateRevision >= request.MinCreateRevision));

        var order = request.SortOrder;
        if (request.SortTarget != SortTarget.Key && order == SortOrder.None)
        {
            order = SortOrder.Ascend;
        }

        if (order != SortOrder.None)
        {
            Comparer<KeyValue> by = request.SortTarget switch
            {
                SortTarget.Version => Comparer<KeyValue>.Create((a, b) => a.Version.CompareTo(b.Version)),
                SortTarget.Create => Comparer<KeyValue>.Create((a, b) => a.CreateRevision.CompareTo(b.CreateRevision)),
                SortTarget.Mod => Comparer<KeyValue>.Create((a, b) => a.ModRevision.CompareTo(b.ModRevision)),
                SortTarget.Value => Comparer<KeyValue>.Create((a, b) => Order(a.Value, b.Value)),
                _ => Comparer<KeyValue>.Create((a, b) => Order(a.Key, b.Key)),
            };
            // Stable, so equal values keep key order (etcd's own sort leaves their order unspecified).
            kvs = order == SortOrder.Descend ? kvs.OrderByDescending(kv => kv, by) : kvs.OrderBy(kv => kv, by);
        }

        var list = kvs.Select(kv => kv.Clone()).ToList();
        if (request.Limit > 0 && list.Count > request.Limit)
        {
            list.RemoveRange((int)request.Limit, list.Count - (int)request.Limit);
            response.More = true;
        }

        if (request.KeysOnly)
        {
            list.ForEach(kv => kv.Value = ByteString.Empty);
        }

        response.Kvs.Add(list);
        return response;
    }

    private PutResponse Put(PutRequest request, Write write)
    {
        RequireKey(request.Key);
        var previous = Latest(request.Key, write.ReadRevision);
        if ((request.IgnoreValue || request.IgnoreLease) && previous is null)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "etcdserver: key not found"));
        }

        var revision = write.Change();
        Versions(request.Key).Add(new KeyValue
        {
            Key = request.Key,
            Value = request.IgnoreValue ? previous!.Value : request.Value,
            Lease = request.IgnoreLease ? previous!.Lease : request.Lease,
            CreateRevision = previous?.CreateRevision ?? revision,
            ModRevision = revision,
            Version = (previous?.Version ?? 0) + 1,
        });
        var response = new PutResponse { Header = new ResponseHeader() };
        if (request.PrevKv && previous is not null)
        {
            response.PrevKv = previous.Clone();
        }

        return response;
    }

    private DeleteRangeResponse DeleteRange(DeleteRangeRequest request, Write write)
    {
        RequireKey(request.Key);
        var doomed = Live(request.Key, request.RangeEnd, write.ReadRevision);
        var response = new DeleteRangeResponse { Header = new ResponseHeader(), Deleted = doomed.Count };
        if (doomed.Count == 0)
        {
            return response;
        }

        var revision = write.Change();
        foreach (var kv in doomed)
        {
            Versions(kv.Key).Add(new KeyValue { Key = kv.Key, ModRevision = revision });
            if (request.PrevKv)
            {
                response.PrevKvs.Add(kv.Clone());
            }
        }

        return response;
    }

    private static void RequireKey(ByteString key)
    {
        if (key.IsEmpty)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "etcdserver: key is not provided"));
        }
    }

    private List<KeyValue> Versions(ByteString key)
    {
        if (!_history.TryGetValue(key, out var versions))
        {
            versions = [];
            _history.Add(key, versions);
        }

        return versions;
    }

    /// <summary>The key's last version at or before <paramref name="revision"/>, null when absent or deleted then.</summary>
    private KeyValue? Latest(ByteString key, long revision) =>
        _history.TryGetValue(key, out var versions) ? LatestOf(versions, revision) : null;

    private static KeyValue? LatestOf(List<KeyValue> versions, long revision) =>
        versions.LastOrDefault(kv => kv.ModRevision <= revision) is { Version: > 0 } kv ? kv : null;

    /// <summary>
    /// The live keys etcd reads for (key, range_end) at a revision, in key order: range_end empty is the key alone,
    /// "\0" every key from it on, one at or before the key nothing.
    /// </summary>
    private List<KeyValue> Live(ByteString key, ByteString rangeEnd, long revision)
    {
        if (rangeEnd.IsEmpty)
        {
            return Latest(key, revision) is { } single ? [single] : [];
        }

        var toEnd = rangeEnd.Length == 1 && rangeEnd[0] == 0;
        if (!toEnd && Order(rangeEnd, key) <= 0)
        {
            return [];
        }

        return _history
            .SkipWhile(entry => Order(entry.Key, key) < 0)
            .TakeWhile(entry => toEnd || Order(entry.Key, rangeEnd) < 0)
            .Select(entry => LatestOf(entry.Value, revision))
            .OfType<KeyValue>()
            .ToList();
    }

    private static int Order(ByteString a, ByteString b) => a.Span.SequenceCompareTo(b.Span);

    /// <summary>One write (a request or a whole txn): all its changes share one new revision, taken only if something changed.</summary>
    private sealed class Write(EtcdKvStore store)
    {
        private bool _changed;

        /// <summary>What the write's reads see: the store with the write's own changes so far.</summary>
        public long ReadRevision => _changed ? store._revision + 1 : store._revision;

        public long Change()
        {
            _changed = true;
            return store._revision + 1;
        }

        public void Undo()
        {
            foreach (var versions in store._history.Values)
            {
                versions.RemoveAll(kv => kv.ModRevision > store._revision);
            }

            _changed = false;
        }

        public void Commit()
        {
            if (_changed)
            {
                store._revision++;
            }
        }
    }
}
