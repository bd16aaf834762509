using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Google.Protobuf.Collections;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.Encryption;

/// <summary>
/// Compare-by-VALUE without deterministic encryption. etcd evaluates every compare of a transaction (nested
/// ones included) against one snapshot before running any op; the proxy does the same on decrypted values:
/// it reads the compared keys at one revision, evaluates the value compares itself, and sends etcd a
/// transaction in which each value compare is replaced by its outcome, wrapped in guards that hold only if
/// nothing the outcomes depend on changed since that read. If a guard fails, the caller reads again and
/// retries, so the outcome is exactly what etcd would have decided on plaintext at commit time.
/// </summary>
/// <remarks>
/// The guards are bounded by the number of compares, not by the number of keys a range compare covers: etcd
/// refuses a transaction with more than <c>--max-txn-ops</c> (default 128) compares, and a range compare may
/// cover any number of keys. See <see cref="CompareSnapshot.Guards"/>.
/// </remarks>
internal sealed class ValueCompares
{
    private readonly KeyValueOpener _opener;

    public ValueCompares(KeyValueOpener opener) => _opener = opener;

    public static bool AnyIn(TxnRequest txn) =>
        txn.Compare.Any(IsValueCompare) ||
        txn.Success.Concat(txn.Failure).Any(op => op.RequestTxn is { } nested && AnyIn(nested));

    /// <summary>Reads every key or range that a value compare in <paramref name="txn"/> looks at, at one revision.</summary>
    public async Task<CompareSnapshot> ReadAsync(TxnRequest txn, KV.KVClient kv, Grpc.Core.CallOptions options)
    {
        var ranges = new List<(ByteString Key, ByteString RangeEnd)>();
        Collect(txn, ranges);
        var read = new TxnRequest();
        foreach (var (key, rangeEnd) in ranges)
        {
            read.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = key, RangeEnd = rangeEnd } });
        }

        var response = await kv.TxnAsync(read, options).ConfigureAwait(false);
        var snapshot = new CompareSnapshot(response.Header.Revision);
        for (var i = 0; i < ranges.Count; i++)
        {
            var kvs = response.Responses[i].ResponseRange.Kvs;
            await _opener.OpenAllAsync(kvs, options.CancellationToken).ConfigureAwait(false);
            snapshot.Add(ranges[i].Key, ranges[i].RangeEnd, kvs);
        }

        return snapshot;
    }

    /// <summary>
    /// The transaction to send: guards on the compared keys around <paramref name="sealedTxn"/> with its value
    /// compares decided. etcd answers succeeded=false on the outer level only when a guard failed.
    /// </summary>
    public static TxnRequest Guarded(TxnRequest original, TxnRequest sealedTxn, CompareSnapshot snapshot)
    {
        var decided = sealedTxn.Clone();
        Decide(original, decided, snapshot);
        var guarded = new TxnRequest();
        guarded.Compare.Add(snapshot.Guards());
        guarded.Success.Add(new RequestOp { RequestTxn = decided });
        return guarded;
    }

    private static bool IsValueCompare(Compare compare) => compare.Target == CompareTarget.Value;

    private static void Collect(TxnRequest txn, List<(ByteString, ByteString)> ranges)
    {
        foreach (var compare in txn.Compare.Where(IsValueCompare))
        {
            if (!ranges.Contains((compare.Key, compare.RangeEnd)))
            {
                ranges.Add((compare.Key, compare.RangeEnd));
            }
        }

        foreach (var op in txn.Success.Concat(txn.Failure))
        {
            if (op.RequestTxn is { } nested)
            {
                Collect(nested, ranges);
            }
        }
    }

    private static void Decide(TxnRequest original, TxnRequest target, CompareSnapshot snapshot)
    {
        var valueCompares = original.Compare.Where(IsValueCompare).ToList();
        if (valueCompares.Count > 0)
        {
            var holds = valueCompares.All(snapshot.Evaluate);
            var others = target.Compare.Where(c => !IsValueCompare(c)).ToList();
            target.Compare.Clear();
            target.Compare.Add(others);
            if (!holds)
            {
                // A compare etcd can never find true (no version is below zero) makes etcd take the failure
                // branch and report succeeded=false, exactly as the failed value compare would have.
                target.Compare.Add(new Compare { Key = valueCompares[0].Key, Target = CompareTarget.Version, Result = CompareResult.Less, Version = 0 });
            }
        }

        Descend(original.Success, target.Success, snapshot);
        Descend(original.Failure, target.Failure, snapshot);
    }

    private static void Descend(RepeatedField<RequestOp> original, RepeatedField<RequestOp> target, CompareSnapshot snapshot)
    {
        for (var i = 0; i < original.Count; i++)
        {
            if (original[i].RequestTxn is { } nested)
            {
                Decide(nested, target[i].RequestTxn, snapshot);
            }
        }
    }

    /// <summary>What the compared keys held at one revision, decrypted.</summary>
    internal sealed class CompareSnapshot
    {
        private readonly long _revision;
        private readonly Dictionary<(ByteString, ByteString), List<KeyValue>> _ranges = [];
        private readonly List<KeyValue> _witnesses = [];

        public CompareSnapshot(long revision) => _revision = revision;

        public void Add(ByteString key, ByteString rangeEnd, IEnumerable<KeyValue> kvs) => _ranges[(key, rangeEnd)] = kvs.ToList();

        /// <summary>
        /// etcd's rule: a value compare on no key is false; on a range, every key must satisfy it. For a range,
        /// also picks the key that keeps the outcome as long as it stays (see <see cref="Guards"/>): the first
        /// key that fails the compare, or, when all satisfy it, any key.
        /// </summary>
        public bool Evaluate(Compare compare)
        {
            var kvs = _ranges[(compare.Key, compare.RangeEnd)];
            var failing = kvs.Find(kv => !Holds(compare.Result, kv.Value.Span.SequenceCompareTo(compare.Value.Span)));
            if (!compare.RangeEnd.IsEmpty && (failing ?? kvs.FirstOrDefault()) is { } witness)
            {
                _witnesses.Add(witness);
            }

            return kvs.Count > 0 && failing is null;
        }

        /// <summary>
        /// Compares that hold only while every outcome decided from this snapshot still holds; call after
        /// <see cref="Evaluate"/>. A single compared key must not have been created, changed or deleted since the
        /// read. A range must have had no key created or changed since (one compare on the whole range), which
        /// leaves deletions: removing keys can only change a range's outcome by removing every key that fails
        /// the compare (false becomes true) or every key (true becomes false, as an empty range compares false),
        /// so one key per decided range compare, its witness, must still be there unchanged. That keeps the guards
        /// to at most two per compare, however many keys a range covers.
        /// </summary>
        public IEnumerable<Compare> Guards()
        {
            var seen = new HashSet<ByteString>();
            foreach (var ((key, rangeEnd), kvs) in _ranges)
            {
                if (rangeEnd.IsEmpty)
                {
                    var mod = kvs.Count > 0 ? kvs[0].ModRevision : 0;
                    if (seen.Add(key))
                    {
                        yield return ModRevisionIs(key, mod);
                    }

                    continue;
                }

                // No key in the range written after the read (this also catches new keys).
                yield return new Compare { Key = key, RangeEnd = rangeEnd, Target = CompareTarget.Mod, Result = CompareResult.Less, ModRevision = _revision + 1 };
            }

            foreach (var witness in _witnesses.Where(kv => seen.Add(kv.Key)))
            {
                yield return ModRevisionIs(witness.Key, witness.ModRevision);
            }
        }

        private static Compare ModRevisionIs(ByteString key, long modRevision) =>
            new() { Key = key, Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = modRevision };

        private static bool Holds(CompareResult result, int order) => result switch
        {
            CompareResult.Equal => order == 0,
            CompareResult.NotEqual => order != 0,
            CompareResult.Greater => order > 0,
            CompareResult.Less => order < 0,
            _ => false,
        };
    }
}
