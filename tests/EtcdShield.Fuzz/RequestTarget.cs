using EtcdShield.Authorization;
using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Protocol.V3lockpb;
using EtcdShield.Tls;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Fuzz;

/// <summary>
/// A client's request, which any client with a certificate sends: the first byte picks the message type, the rest
/// is its protobuf encoding. The proxy's walk over it runs as it does before anything reaches etcd: the keys it
/// touches (<see cref="RequiredAccess.Collect"/>), the policy decision for a narrowly granted identity, the size
/// limits, and the sealing walk of Put and Txn values (nested txns included). Refusals are the decoder's
/// <see cref="InvalidProtocolBufferException"/> and the proxy's own gRPC statuses (<see cref="RpcException"/>).
/// </summary>
internal sealed class RequestTarget : FuzzTarget
{
    private const string Policy = """
        identities:
          - name: tenant
            match: { cn: tenant }
            methods: [Lease/LeaseGrant, Lease/LeaseRevoke]
            keys:
              - { prefix: /tenant/, permission: readwrite }
              - { key: /shared/a, range_end: /shared/m, permission: read }
              - { key: "", permission: read }
        """;

    private static readonly (string Method, MessageParser Parser)[] Kinds =
    [
        ("KV/Range", RangeRequest.Parser),
        ("KV/Put", PutRequest.Parser),
        ("KV/DeleteRange", DeleteRangeRequest.Parser),
        ("KV/Txn", TxnRequest.Parser),
        ("KV/Compact", CompactionRequest.Parser),
        ("Watch/Watch", WatchRequest.Parser),
        ("Lease/LeaseGrant", LeaseGrantRequest.Parser),
        ("Lease/LeaseRevoke", LeaseRevokeRequest.Parser),
        ("Lock/Lock", LockRequest.Parser),
        ("Lock/Unlock", UnlockRequest.Parser),
        ("Election/Campaign", CampaignRequest.Parser),
        ("Election/Proclaim", ProclaimRequest.Parser),
        ("Election/Resign", ResignRequest.Parser),
        ("Election/Leader", LeaderRequest.Parser),
    ];

    public override string Name => "request";

    public override FuzzAction Prepare(string directory)
    {
        var identities = PolicyFile.Parse(Policy);
        var caller = new Caller(ClientIdentity.Unknown, identities[0], new AccessPolicy(identities, "fuzz"), "fuzz");
        var protector = new FuzzKeys().Protector;
        var opener = new KeyValueOpener(protector);
        var values = new TxnValues(protector, opener, new RangeValues(opener));
        var limit = new ValueRequestLimit(EncryptionOptions.DefaultMaxValueBytes);
        return input =>
        {
            if (input.IsEmpty)
            {
                return;
            }

            var (method, parser) = Kinds[input[0] % Kinds.Length];
            IMessage request;
            try
            {
                request = parser.ParseFrom(input[1..]);
            }
            catch (InvalidProtocolBufferException)
            {
                return;
            }

            try
            {
                Walk(method, request, caller, values, limit);
            }
            catch (RpcException)
            {
            }
        };
    }

    private static void Walk(string method, IMessage request, Caller caller, TxnValues values, ValueRequestLimit limit)
    {
        var accesses = new List<KeyAccess>();
        RequiredAccess.Collect(method, request, accesses);
        foreach (var access in accesses)
        {
            _ = access.Range.ToString();
        }

        _ = AccessGate.Check(caller, method, request);
        switch (request)
        {
            case RangeRequest range:
                _ = RangeValues.ForUpstream(range);
                break;
            case PutRequest put:
                limit.CheckPlaintext(put);
                values.SealPutAsync(put, CancellationToken.None).AsTask().GetAwaiter().GetResult();
                limit.CheckSealed(put);
                break;
            case TxnRequest txn:
                limit.CheckPlaintext(txn);
                _ = ValueCompares.AnyIn(txn);
                var sealedTxn = txn.Clone();
                values.SealAsync(sealedTxn, CancellationToken.None).AsTask().GetAwaiter().GetResult();
                limit.CheckSealed(sealedTxn);
                break;
            default:
                break;
        }
    }

    public override IEnumerable<(string Name, byte[] Bytes)> Seeds(string directory)
    {
        static ByteString B(string text) => ByteString.CopyFromUtf8(text);
        var nested = new TxnRequest
        {
            Compare = { new Compare { Key = B("/tenant/a"), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = B("v") } },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = B("/tenant/a"), Value = B("w"), PrevKv = true } } },
            Failure = { new RequestOp { RequestRange = new RangeRequest { Key = B("/shared/b"), RangeEnd = B("/shared/c"), SortTarget = RangeRequest.Types.SortTarget.Value } } },
        };
        var outer = new TxnRequest
        {
            Compare = { new Compare { Key = B("/tenant/"), RangeEnd = B("/tenant0"), Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Greater, ModRevision = 3 } },
            Success = { new RequestOp { RequestTxn = nested }, new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = B("/tenant/x"), PrevKv = true } } },
        };
        IMessage[] requests =
        [
            new RangeRequest { Key = B("/tenant/"), RangeEnd = B("/tenant0"), Limit = 10, SortOrder = RangeRequest.Types.SortOrder.Descend },
            new PutRequest { Key = B("/tenant/k"), Value = B("value"), Lease = 7 },
            new DeleteRangeRequest { Key = B("\0"), RangeEnd = B("\0") },
            outer,
            new CompactionRequest { Revision = 5 },
            new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/shared/a"), RangeEnd = B("/shared/b"), PrevKv = true } },
            new LeaseGrantRequest { TTL = 10 },
            new LeaseRevokeRequest { ID = 7 },
            new LockRequest { Name = B("/tenant/lock"), Lease = 7 },
            new UnlockRequest { Key = B("/tenant/lock/694d") },
            new CampaignRequest { Name = B("/tenant/election"), Lease = 7, Value = B("me") },
            new ProclaimRequest { Leader = new LeaderKey { Name = B("/tenant/election"), Key = B("/tenant/election/694d"), Rev = 4, Lease = 7 }, Value = B("still me") },
            new ResignRequest { Leader = new LeaderKey { Name = B("/tenant/election"), Key = B("/tenant/election/694d") } },
            new LeaderRequest { Name = B("/tenant/election") },
        ];
        foreach (var request in requests)
        {
            var kind = Array.FindIndex(Kinds, k => k.Parser.ParseFrom(ByteString.Empty).GetType() == request.GetType());
            yield return (Kinds[kind].Method.Replace('/', '-'), [(byte)kind, .. request.ToByteArray()]);
        }
    }
}
