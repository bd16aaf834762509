using System.Globalization;
using BenchmarkDotNet.Attributes;
using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Tls;
using Google.Protobuf;

namespace EtcdShield.Microbench;

/// <summary>
/// The authorization walk of one txn (issue #9, finding 2): every compare and op checked against an identity's
/// 4000 single-key grants. A full txn (128 compares and 128 gets) against one 64 times larger: linear means the
/// cost per key stays the same, and the grants add only a binary search each.
/// </summary>
[MemoryDiagnoser]
public class AccessWalkBenchmarks
{
    private const int Grants = 4000;
    private Caller _caller = null!;
    private TxnRequest _txn = null!;

    [Params(128, 8192)]
    public int Keys { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        static byte[] Key(int i) => System.Text.Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"/registry/secrets/ns/key-{i:D6}"));
        var grants = new KeyGrants(Enumerable.Range(0, Grants).Select(i => (KeyRange.SingleKey(Key(i)), KeyPermission.Read)));
        var identity = new PolicyIdentity("reader", new IdentityMatch(["reader"], [], [], [], []), [], grants);
        _caller = new Caller(ClientIdentity.Unknown, identity, new AccessPolicy([identity], "bench"), "127.0.0.1:1");
        _txn = new TxnRequest();
        _txn.Compare.Add(Enumerable.Range(0, Keys).Select(i => new Compare { Key = ByteString.CopyFrom(Key(i * 7 % Grants)), Target = Compare.Types.CompareTarget.Version }));
        _txn.Success.Add(Enumerable.Range(0, Keys).Select(i => new RequestOp { RequestRange = new RangeRequest { Key = ByteString.CopyFrom(Key(i * 11 % Grants)) } }));
    }

    [Benchmark]
    public string? CheckTxn() => AccessGate.Check(_caller, "KV/Txn", _txn) is null ? null : throw new InvalidOperationException("the walk must allow the txn");
}
