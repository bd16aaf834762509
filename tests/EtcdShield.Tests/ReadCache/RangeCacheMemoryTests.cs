using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.ReadCache;
using Google.Protobuf;

namespace EtcdShield.Tests.ReadCache;

/// <summary>Alone, so that the heap measured holds the cache and little else.</summary>
[CollectionDefinition(nameof(RangeCacheMemoryTests), DisableParallelization = true)]
public sealed class RunsAlone;

/// <summary>What the cache counts against its budget, against what it holds on the heap.</summary>
[Collection(nameof(RangeCacheMemoryTests))]
public sealed class RangeCacheMemoryTests
{
    [Theory]
    [InlineData(1, false)]
    [InlineData(1, true)]
    [InlineData(10, false)]
    public void What_an_entry_is_counted_covers_what_it_holds(int keyValues, bool keysOnly)
    {
        // Many small entries are what a client can make the cache hold most of per byte counted. Built as the relay
        // builds them: the request serialized for the key, etcd's answer parsed from the wire.
        const int entries = 10_000;
        var cache = new RangeCache(1L << 34, new ReadCacheMetrics(TestMeterFactory.Create()));
        cache.Established(5);
        var answers = new List<(byte[] Request, byte[] Answer)>();
        for (var i = 0; i < entries; i++)
        {
            var request = new RangeRequest { Key = ByteString.CopyFromUtf8($"/k{i:D7}"), Serializable = true, KeysOnly = keysOnly };
            var response = new RangeResponse { Header = new ResponseHeader { Revision = 5, ClusterId = 1, MemberId = 2, RaftTerm = 3 }, Count = keyValues };
            for (var j = 0; j < keyValues; j++)
            {
                response.Kvs.Add(new KeyValue { Key = ByteString.CopyFromUtf8($"/k{i:D7}/{j}"), Value = keysOnly ? ByteString.Empty : ByteString.CopyFromUtf8("v"), CreateRevision = 4, ModRevision = 5, Version = 1 });
            }

            answers.Add((request.ToByteArray(), response.ToByteArray()));
        }

        var before = GC.GetTotalMemory(forceFullCollection: true);
        foreach (var (request, answer) in answers)
        {
            var range = RangeRequest.Parser.ParseFrom(request);
            var key = range.ToByteString();
            cache.TryGet(key, out var generation);
            cache.Store(key, range, RangeResponse.Parser.ParseFrom(answer), generation);
        }

        var held = GC.GetTotalMemory(forceFullCollection: true) - before;
        Assert.Equal(entries, cache.Count);
        Assert.True(held <= cache.Bytes, $"{held / entries} bytes held per entry, {cache.Bytes / entries} counted");
        GC.KeepAlive(cache);
    }
}
