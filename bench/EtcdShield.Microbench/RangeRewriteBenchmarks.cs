using System.Globalization;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Microbench;

/// <summary>
/// A 100-kv RangeResponse (a Kubernetes LIST page) through the real RangeHandler, against the same answer relayed
/// without a handler (what --no-encryption does) and against the protobuf round trip every relayed message costs
/// anyway (the proxy parses etcd's answer and serializes it again for the client).
/// </summary>
[MemoryDiagnoser]
public class RangeRewriteBenchmarks
{
    private const int Kvs = 100;
    private readonly BenchServerCallContext _context = new();
    private BenchKeys _keys = null!;
    private RangeResponse _response = null!;
    private ByteString[] _sealed = null!;
    private ReplayInvoker _upstream = null!;
    private RelayedMethod _method = null!;
    private RangeHandler _handler = null!;
    private RangeRequest _request = null!;
    private byte[] _wire = null!;
    private byte[] _output = null!;

    [Params(1024)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _keys = new BenchKeys();
        _response = new RangeResponse { Header = new ResponseHeader { ClusterId = 1, MemberId = 2, Revision = 1000, RaftTerm = 3 }, Count = Kvs };
        _sealed = new ByteString[Kvs];
        for (var i = 0; i < Kvs; i++)
        {
            var key = ByteString.CopyFromUtf8(string.Create(CultureInfo.InvariantCulture, $"/registry/secrets/default/secret-{i:D3}"));
            _sealed[i] = _keys.Protector.ProtectAsync(key, ByteString.CopyFrom(RandomNumberGenerator.GetBytes(Size)), null, default).AsTask().GetAwaiter().GetResult();
            _response.Kvs.Add(new KeyValue { Key = key, Value = _sealed[i], CreateRevision = 10 + i, ModRevision = 500 + i, Version = 3 });
        }

        _wire = _response.ToByteArray();
        _output = new byte[_wire.Length];
        _upstream = new ReplayInvoker(_response, Reset);
        _method = Relayed.Method("KV", "Range");
        _handler = new RangeHandler(new RangeValues(new KeyValueOpener(_keys.Protector)));
        _request = new RangeRequest { Key = ByteString.CopyFromUtf8("/registry/secrets/default/"), RangeEnd = ByteString.CopyFromUtf8("/registry/secrets/default0"), Limit = Kvs };
    }

    [GlobalCleanup]
    public void Cleanup() => _keys.Dispose();

    [Benchmark(Baseline = true)]
    public Task<IMessage> ForwardOnly() => new RelayCall(_method, _context, _upstream).ForwardUnaryAsync(_request);

    [Benchmark]
    public Task<IMessage> RangeHandlerDecrypt() => _handler.HandleAsync(_request, new RelayCall(_method, _context, _upstream));

    /// <summary>Parse etcd's bytes and serialize them for the client: the relay's fixed cost for this message.</summary>
    [Benchmark]
    public byte[] ProtobufRoundTrip()
    {
        // Into a reused buffer, as gRPC's marshaller writes into its pipe: only the parse allocates.
        RangeResponse.Parser.ParseFrom(_wire).WriteTo(_output.AsSpan());
        return _output;
    }

    private void Reset()
    {
        var kvs = _response.Kvs;
        for (var i = 0; i < kvs.Count; i++)
        {
            kvs[i].Value = _sealed[i];
        }
    }
}
