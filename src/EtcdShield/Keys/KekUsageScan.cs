using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Keys;

/// <summary>
/// How many stored values each KEK protects, read from the envelope headers of every value in etcd (one
/// consistent revision, paged), so an operator knows whether an old KEK version can be retired. Values are never
/// decrypted or printed: only the KEK id and data key id in their headers are counted.
/// </summary>
internal sealed class KekUsageScan
{
    private const int PageSize = 1000;

    private readonly Dictionary<string, KekUsage> _byKek = new(StringComparer.Ordinal);

    private KekUsageScan(long revision)
    {
        Revision = revision;
    }

    public long Revision { get; private set; }

    public long Keys { get; private set; }

    /// <summary>Values that are not envelopes (written before encryption, or outside the encrypted prefixes).</summary>
    public long Plaintext { get; private set; }

    /// <summary>Values that start like an envelope but do not parse as one.</summary>
    public long Malformed { get; private set; }

    public IReadOnlyCollection<KekUsage> ByKek => _byKek.Values;

    public static async Task<KekUsageScan> RunAsync(CallInvoker invoker, TimeSpan callTimeout, CancellationToken cancellationToken)
    {
        var kv = new KV.KVClient(invoker);
        var scan = new KekUsageScan(0);
        ByteString start = ByteString.CopyFrom(0);
        ByteString all = ByteString.CopyFrom(0);
        while (true)
        {
            RangeResponse page = await kv.RangeAsync(
                new RangeRequest { Key = start, RangeEnd = all, Limit = PageSize, Revision = scan.Revision },
                deadline: DateTime.UtcNow + callTimeout,
                cancellationToken: cancellationToken).ConfigureAwait(false);

            // Every page reads the revision of the first, so keys written meanwhile neither vanish nor count twice.
            if (scan.Revision == 0)
            {
                scan.Revision = page.Header.Revision;
            }

            foreach (KeyValue pair in page.Kvs)
            {
                scan.Count(pair.Value.Span);
            }

            if (!page.More || page.Kvs.Count == 0)
            {
                return scan;
            }

            // The next page starts just after the last key: the key followed by a zero byte.
            byte[] last = page.Kvs[^1].Key.ToByteArray();
            start = ByteString.CopyFrom([.. last, 0]);
        }
    }

    private void Count(ReadOnlySpan<byte> value)
    {
        Keys++;
        if (!ValueEnvelope.HasEnvelopePrefix(value))
        {
            Plaintext++;
            return;
        }

        EnvelopeHeader header;
        try
        {
            header = ValueEnvelope.Parse(value);
        }
        catch (EnvelopeFormatException)
        {
            Malformed++;
            return;
        }

        string kekId = header.GetKekIdString();
        if (!_byKek.TryGetValue(kekId, out KekUsage? usage))
        {
            _byKek[kekId] = usage = new KekUsage(kekId);
        }

        usage.Add(header.DataKeyId);
    }
}

/// <summary>The values and distinct data keys one KEK id protects.</summary>
internal sealed class KekUsage(string kekId)
{
    private readonly HashSet<DataKeyId> _dataKeys = [];

    public string KekId { get; } = kekId;

    public long Values { get; private set; }

    public int DataKeys => _dataKeys.Count;

    public void Add(DataKeyId dataKey)
    {
        Values++;
        _dataKeys.Add(dataKey);
    }
}
