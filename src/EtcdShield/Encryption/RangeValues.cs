using EtcdShield.Protocol.Etcdserverpb;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;

namespace EtcdShield.Encryption;

/// <summary>
/// Range answers with values decrypted, and sorting by value done on the plaintext: etcd can only sort the
/// ciphertext, which would give an order unrelated to the values. For a value sort the proxy asks etcd for
/// the keys etcd itself would sort, sorts the decrypted values the way etcd would, and then applies the
/// client's limit, so <c>count</c> and <c>more</c> stay what etcd would say.
/// </summary>
/// <remarks>
/// Which keys etcd sorts depends on the sort order the client sent, not on the target: with an explicit order
/// (or a revision filter) etcd reads every matching key before sorting, but a value sort with order NONE is
/// ascending over only the first <c>limit + 1</c> keys in key order (etcd's <c>rangeLimit</c>: the sort order is
/// defaulted to ASCEND only after the read). The proxy reads exactly those keys too.
/// </remarks>
internal sealed class RangeValues
{
    private readonly KeyValueOpener _opener;

    public RangeValues(KeyValueOpener opener) => _opener = opener;

    public static bool SortsByValue(RangeRequest request) =>
        request.SortTarget == SortTarget.Value && !request.CountOnly;

    /// <summary>The request to send to etcd in place of the client's.</summary>
    public static RangeRequest ForUpstream(RangeRequest request)
    {
        if (!SortsByValue(request))
        {
            return request;
        }

        var upstream = request.Clone();
        upstream.SortOrder = SortOrder.None;
        upstream.SortTarget = SortTarget.Key;
        upstream.Limit = SortsOnlyFirstKeys(request) ? request.Limit + 1 : 0;
        upstream.KeysOnly = false;
        return upstream;
    }

    /// <summary>etcd reads limit + 1 keys in key order and sorts only those (see the remarks above).</summary>
    private static bool SortsOnlyFirstKeys(RangeRequest request) =>
        request.SortOrder == SortOrder.None &&
        request.Limit > 0 && request.Limit < long.MaxValue &&
        request.MinModRevision == 0 && request.MaxModRevision == 0 &&
        request.MinCreateRevision == 0 && request.MaxCreateRevision == 0;

    /// <summary>Turns etcd's answer to <see cref="ForUpstream"/> into the answer to the client's request.</summary>
    public async ValueTask OpenAsync(RangeRequest request, RangeResponse response, CancellationToken cancellationToken)
    {
        if (request.KeysOnly && !SortsByValue(request))
        {
            return;
        }

        await _opener.OpenAllAsync(response.Kvs, cancellationToken).ConfigureAwait(false);
        if (!SortsByValue(request))
        {
            return;
        }

        // etcd sorts ascending when a non-key target is given without an order.
        var descending = request.SortOrder == SortOrder.Descend;
        var sorted = response.Kvs
            .Select((kv, index) => (kv, index))
            .OrderBy(e => e, Comparer<(Protocol.Mvccpb.KeyValue kv, int index)>.Create((a, b) =>
            {
                var byValue = a.kv.Value.Span.SequenceCompareTo(b.kv.Value.Span);
                // Equal values keep etcd's key order either way.
                return byValue != 0 ? (descending ? -byValue : byValue) : a.index.CompareTo(b.index);
            }))
            .Select(e => e.kv)
            .ToList();

        if (request.Limit > 0 && sorted.Count > request.Limit)
        {
            sorted.RemoveRange((int)request.Limit, sorted.Count - (int)request.Limit);
            response.More = true;
        }

        if (request.KeysOnly)
        {
            foreach (var kv in sorted)
            {
                kv.Value = Google.Protobuf.ByteString.Empty;
            }
        }

        response.Kvs.Clear();
        response.Kvs.Add(sorted);
    }
}
