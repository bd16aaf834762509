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
/// One WatchResponse carrying a batch of PUT events through the real WatchValueRewriter, as each watcher's stream
/// rewrites it, against restoring the batch alone (the benchmark's own bookkeeping) and the protobuf round trip.
/// </summary>
[MemoryDiagnoser]
public class WatchBatchBenchmarks
{
    private readonly BenchServerCallContext _context = new();
    private BenchKeys _keys = null!;
    private WatchResponse _response = null!;
    private ByteString[] _sealed = null!;
    private WatchValueRewriter _rewriter = null!;
    private RelayCall _call = null!;
    private byte[] _wire = null!;
    private byte[] _output = null!;

    [Params(1024)]
    public int Size { get; set; }

    [Params(1, 100)]
    public int Events { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _keys = new BenchKeys();
        _response = new WatchResponse { Header = new ResponseHeader { ClusterId = 1, MemberId = 2, Revision = 1000, RaftTerm = 3 }, WatchId = 7 };
        _sealed = new ByteString[Events];
        for (var i = 0; i < Events; i++)
        {
            var key = ByteString.CopyFromUtf8(string.Create(CultureInfo.InvariantCulture, $"/registry/configmaps/default/cm-{i:D3}"));
            _sealed[i] = _keys.Protector.ProtectAsync(key, ByteString.CopyFrom(RandomNumberGenerator.GetBytes(Size)), null, default).AsTask().GetAwaiter().GetResult();
            _response.Events.Add(new Event
            {
                Type = Event.Types.EventType.Put,
                Kv = new KeyValue { Key = key, Value = _sealed[i], CreateRevision = 10 + i, ModRevision = 900 + i, Version = 2 },
            });
        }

        _wire = _response.ToByteArray();
        _output = new byte[_wire.Length];
        _rewriter = new WatchValueRewriter(new KeyValueOpener(_keys.Protector));
        _call = new RelayCall(Relayed.Method("Watch", "Watch"), _context, new ReplayInvoker(_response, Reset));
    }

    [GlobalCleanup]
    public void Cleanup() => _keys.Dispose();

    [Benchmark(Baseline = true)]
    public WatchResponse ResetOnly()
    {
        Reset();
        return _response;
    }

    [Benchmark]
    public ValueTask<IMessage> RewriteBatch()
    {
        Reset();
        return _rewriter.RewriteResponseAsync(_response, _call.CancellationToken);
    }

    [Benchmark]
    public byte[] ProtobufRoundTrip()
    {
        // Into a reused buffer, as gRPC's marshaller writes into its pipe: only the parse allocates.
        WatchResponse.Parser.ParseFrom(_wire).WriteTo(_output.AsSpan());
        return _output;
    }

    private void Reset()
    {
        var events = _response.Events;
        for (var i = 0; i < events.Count; i++)
        {
            events[i].Kv.Value = _sealed[i];
        }
    }
}
