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
    /// <summary>etcd's range_end "\0": every key from the start on.</summary>
    private static readonly ByteString AllFrom = ByteString.CopyFrom(0);

    private readonly KeyValueOpener _opener;

    public ValueCompares(KeyValueOpener opener) => _opener = opener;

    public static bool AnyIn(TxnRequest txn) =>
        txn.Compare.Any(IsValueCompare) ||
        txn.Success.Concat(txn.Failure).Any(op => op.RequestTxn is { } nested && AnyIn(nested));

    /// <summary>
    /// Reads every key or range of <see cref="Compared"/> at one revision, in one txn, reading each stored key once:
    /// the compared ranges are joined where they overlap and each compare is given its own keys out of what was
    /// read. Compares whose ranges differ only a little (each its own range_end past the same keys) would otherwise
    /// make etcd send, and the proxy hold and decrypt, one copy of those keys per compare.
    /// </summary>
    public async Task<CompareSnapshot> ReadAsync(IReadOnlyList<(ByteString Key, ByteString RangeEnd)> ranges, KV.KVClient kv, Grpc.Core.CallOptions options)
    {
        var read = new TxnRequest();
        foreach (var (start, end) in Union(ranges))
        {
            read.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = start, RangeEnd = end ?? AllFrom } });
        }

        var response = await kv.TxnAsync(read, options).ConfigureAwait(false);
        // The joined ranges are disjoint and in key order, and etcd answers each in key order: so is the whole.
        var stored = new List<KeyValue>();
        foreach (var answer in response.Responses)
        {
            await _opener.OpenAllAsync(answer.ResponseRange.Kvs, options.CancellationToken).ConfigureAwait(false);
            stored.AddRange(answer.ResponseRange.Kvs);
        }

        var all = stored.ToArray();
        var snapshot = new CompareSnapshot(response.Header.Revision);
        foreach (var (key, rangeEnd) in ranges)
        {
            snapshot.Add(key, rangeEnd, Within(all, key, rangeEnd));
        }

        return snapshot;
    }

    /// <summary>
    /// The keys etcd compares for (key, range_end), as [start, end) with null for no end: range_end empty is the key
    /// alone, "\0" every key from it on, one at or before the key nothing at all.
    /// </summary>
    private static (ByteString Start, ByteString? End)? Interval(ByteString key, ByteString rangeEnd)
    {
        if (rangeEnd.IsEmpty)
        {
            return (key, ByteString.CopyFrom([.. key.Span, 0]));
        }

        if (rangeEnd.Length == 1 && rangeEnd[0] == 0)
        {
            return (key, null);
        }

        return Order(key, rangeEnd) < 0 ? (key, rangeEnd) : null;
    }

    /// <summary>The compared intervals joined where they overlap or touch, in key order.</summary>
    private static List<(ByteString Start, ByteString? End)> Union(IReadOnlyList<(ByteString Key, ByteString RangeEnd)> ranges)
    {
        var intervals = ranges.Select(r => Interval(r.Key, r.RangeEnd)).OfType<(ByteString Start, ByteString? End)>()
            .OrderBy(i => i.Start, Comparer<ByteString>.Create(Order)).ToList();
        var joined = new List<(ByteString Start, ByteString? End)>();
        foreach (var interval in intervals)
        {
            if (joined.Count > 0 && joined[^1] is var (start, end) && (end is null || Order(interval.Start, end) <= 0))
            {
                joined[^1] = (start, end is null || interval.End is null ? null : Order(interval.End, end) > 0 ? interval.End : end);
            }
            else
            {
                joined.Add(interval);
            }
        }

        return joined;
    }

    /// <summary>The part of <paramref name="stored"/> (in key order) that etcd compares for (key, range_end), without copying it.</summary>
    private static ArraySegment<KeyValue> Within(KeyValue[] stored, ByteString key, ByteString rangeEnd)
    {
        if (Interval(key, rangeEnd) is not var (start, end))
        {
            return ArraySegment<KeyValue>.Empty;
        }

        var from = FirstAtOrAfter(stored, start);
        var to = end is null ? stored.Length : FirstAtOrAfter(stored, end);
        return new ArraySegment<KeyValue>(stored, from, Math.Max(0, to - from));
    }

    private static int FirstAtOrAfter(KeyValue[] stored, ByteString key)
    {
        var (low, high) = (0, stored.Length);
        while (low < high)
        {
            var middle = low + ((high - low) / 2);
            if (Order(stored[middle].Key, key) < 0)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }

    private static int Order(ByteString a, ByteString b) => a.Span.SequenceCompareTo(b.Span);

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

    /// <summary>Every distinct (key, range_end) a value compare looks at, in the order first met.</summary>
    internal static List<(ByteString Key, ByteString RangeEnd)> Compared(TxnRequest txn)
    {
        var ranges = new List<(ByteString, ByteString)>();
        Collect(txn, ranges, []);
        return ranges;
    }

    private static void Collect(TxnRequest txn, List<(ByteString, ByteString)> ranges, HashSet<(ByteString, ByteString)> seen)
    {
        foreach (var compare in txn.Compare.Where(IsValueCompare))
        {
            if (seen.Add((compare.Key, compare.RangeEnd)))
            {
                ranges.Add((compare.Key, compare.RangeEnd));
            }
        }

        foreach (var op in txn.Success.Concat(txn.Failure))
        {
            if (op.RequestTxn is { } nested)
            {
                Collect(nested, ranges, seen);
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
        private readonly Dictionary<(ByteString, ByteString), ComparedRange> _ranges = [];
        private readonly List<KeyValue> _witnesses = [];

        public CompareSnapshot(long revision) => _revision = revision;

        public void Add(ByteString key, ByteString rangeEnd, IReadOnlyList<KeyValue> kvs) => _ranges[(key, rangeEnd)] = new ComparedRange(kvs);

        /// <summary>
        /// etcd's rule: a value compare on no key is false; on a range, every key must satisfy it. For a range,
        /// also picks the key that keeps the outcome as long as it stays (see <see cref="Guards"/>): a key that
        /// fails the compare, or, when all satisfy it, any key. Constant time per compare, however many keys the
        /// range holds (see <see cref="ComparedRange"/>), so a txn costs what its compares and ranges add up to.
        /// </summary>
        public bool Evaluate(Compare compare)
        {
            var range = _ranges[(compare.Key, compare.RangeEnd)];
            var failing = range.Failing(compare.Result, compare.Value);
            if (!compare.RangeEnd.IsEmpty && (failing ?? range.First) is { } witness)
            {
                _witnesses.Add(witness);
            }

            return range.First is not null && failing is null;
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
            foreach (var ((key, rangeEnd), range) in _ranges)
            {
                if (rangeEnd.IsEmpty)
                {
                    var mod = range.First?.ModRevision ?? 0;
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
    }

    /// <summary>
    /// One compared range, summarised once so that any number of compares on it costs constant time each: all
    /// values are above v when the smallest is, below v when the largest is, equal to v when both ends are, and
    /// differ from v when no value is v. A failing key is then the smallest, the largest, or the one holding v.
    /// </summary>
    private sealed class ComparedRange
    {
        private readonly IReadOnlyList<KeyValue> _kvs;
        private Dictionary<ByteString, KeyValue>? _byValue;

        public ComparedRange(IReadOnlyList<KeyValue> kvs)
        {
            _kvs = kvs;
            foreach (var kv in kvs)
            {
                // Strict comparisons keep the first key in key order among equal values.
                if (Smallest is null || Order(kv.Value, Smallest.Value) < 0)
                {
                    Smallest = kv;
                }

                if (Largest is null || Order(kv.Value, Largest.Value) > 0)
                {
                    Largest = kv;
                }
            }
        }

        public KeyValue? First => _kvs.Count > 0 ? _kvs[0] : null;

        private KeyValue? Smallest { get; }

        private KeyValue? Largest { get; }

        /// <summary>A key whose value fails the compare, or null when every key satisfies it (or there is none).</summary>
        public KeyValue? Failing(CompareResult result, ByteString value)
        {
            if (Smallest is null || Largest is null)
            {
                return null;
            }

            return result switch
            {
                CompareResult.Equal => Order(Smallest.Value, value) != 0 ? Smallest : Order(Largest.Value, value) != 0 ? Largest : null,
                CompareResult.Greater => Order(Smallest.Value, value) > 0 ? null : Smallest,
                CompareResult.Less => Order(Largest.Value, value) < 0 ? null : Largest,
                CompareResult.NotEqual => ByValue().GetValueOrDefault(value),
                // etcd fails a compare whose result it does not know; any key then keeps it false.
                _ => First,
            };
        }

        private Dictionary<ByteString, KeyValue> ByValue()
        {
            if (_byValue is null)
            {
                _byValue = [];
                foreach (var kv in _kvs)
                {
                    _byValue.TryAdd(kv.Value, kv);
                }
            }

            return _byValue;
        }
    }
}
