using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// The same scenario of raw JSON requests (<see cref="GatewayScenario"/>) sent to etcd's own gateway on a fresh
/// etcd over mutual TLS, and to the proxy's gateway in front of another fresh etcd, once relaying values as sent
/// and once encrypting them: the answers must be the same text once what legitimately differs between two servers
/// is normalised (<see cref="GatewayNormalizer"/>). Field order, quoting and escaping count; the one expected
/// difference is the encrypting proxy's extra raft entry per read-only value-compare txn. Behind the encrypting
/// proxy no written value may be found at rest: not in the keys etcd holds, not in its write-ahead log, not in its
/// database file.
/// </summary>
public sealed partial class GatewayDifferentialTests(GatewayDifferentialTests.Fixture fixture) : IClassFixture<GatewayDifferentialTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        private readonly Lazy<Task<IReadOnlyList<GatewayRecord>>> _reference;

        public Fixture() => _reference = new(RunReferenceAsync);

        public TestPki Pki { get; } = new();

        /// <summary>etcd serving its own gateway to clients with certificates from <see cref="Pki"/>.</summary>
        internal EtcdProcess ReferenceEtcd { get; private set; } = null!;

        internal EtcdProcess PlainEtcd { get; private set; } = null!;

        internal ShieldServer PlainShield { get; private set; } = null!;

        internal EtcdProcess SealedEtcd { get; private set; } = null!;

        internal ShieldServer SealedShield { get; private set; } = null!;

        /// <summary>etcd's own answers, recorded once over HTTP/1.1 and compared against each proxy run.</summary>
        internal Task<IReadOnlyList<GatewayRecord>> ReferenceAsync() => _reference.Value;

        public async Task InitializeAsync()
        {
            var reference = EtcdProcess.StartAsync(new EtcdOptions { Name = "gateway-reference", ClientTls = EtcdClientTls.From(Pki) });
            var plain = EtcdProcess.StartAsync();
            var sealedEtcd = EtcdProcess.StartAsync();
            ReferenceEtcd = await reference;
            PlainEtcd = await plain;
            SealedEtcd = await sealedEtcd;
            PlainShield = await ShieldServer.StartAsync(Pki, PlainEtcd.ClientUrl, encrypt: false);
            SealedShield = await ShieldServer.StartAsync(Pki, SealedEtcd.ClientUrl);
        }

        public async Task DisposeAsync()
        {
            try
            {
                await DisposeAllAsync(PlainShield, SealedShield);
            }
            finally
            {
                await DisposeAllAsync(ReferenceEtcd, PlainEtcd, SealedEtcd);
                Pki.Dispose();
            }
        }

        private async Task<IReadOnlyList<GatewayRecord>> RunReferenceAsync()
        {
            using var http = new GatewayHttp(ReferenceEtcd.ClientUrl, Pki);
            var records = await GatewayScenario.RunAsync(http, HttpVersion.Version11);
            var failed = records.FirstOrDefault(r => !r.RawAnswer.StartsWith("200 ", StringComparison.Ordinal));
            Assert.True(failed is null, $"etcd's own gateway failed step {failed?.Index}: {failed?.RawAnswer}");
            return records;
        }

        private static async Task DisposeAllAsync(params IAsyncDisposable?[] parts)
        {
            foreach (var part in parts)
            {
                if (part is not null)
                {
                    await part.DisposeAsync();
                }
            }
        }
    }

    [Fact]
    public async Task The_relaying_proxy_answers_the_scenario_over_http1_as_etcd_does()
    {
        var expected = await fixture.ReferenceAsync();
        using var http = new GatewayHttp(fixture.PlainShield.ClientUrl, fixture.Pki);

        var actual = await GatewayScenario.RunAsync(http, HttpVersion.Version11);

        Assert.True(GatewayScenario.Differences(expected, actual) is "", GatewayScenario.Differences(expected, actual));

        // The control for the at-rest check below: without encryption the values are in etcd's log as sent.
        var atRest = await AtRestFiles.ReadAsync(fixture.PlainEtcd);
        Assert.Contains(GatewayScenario.PlainValues, atRest.Contains);
    }

    [Fact]
    public async Task The_encrypting_proxy_answers_the_scenario_over_http2_as_etcd_does_and_nothing_is_plaintext_at_rest()
    {
        var expected = WithRaftEntries(await fixture.ReferenceAsync(), ReadOnlyValueCompareTxns);
        using var http = new GatewayHttp(fixture.SealedShield.ClientUrl, fixture.Pki);

        var actual = await GatewayScenario.RunAsync(http, HttpVersion.Version20);

        Assert.True(GatewayScenario.Differences(expected, actual) is "", GatewayScenario.Differences(expected, actual));
        using var direct = GrpcChannels.ToEtcd(fixture.SealedEtcd);
        var stored = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/gw/"), RangeEnd = ByteString.CopyFromUtf8("/gw0") });
        Assert.Equal(["/gw/a", "/gw/b", "/gw/c", "/gw/d", "/gw/e"], stored.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        StoredValue.AssertSealed(stored.Kvs[0].Value, "gw-alpha-plain-2");
        StoredValue.AssertSealed(stored.Kvs[1].Value, "gw-bravo-plain-2");
        Assert.True(stored.Kvs[2].Value.Span.StartsWith(StoredValue.EnvelopeMagic), "the binary value is stored without an envelope");
        StoredValue.AssertSealed(stored.Kvs[3].Value, "gw-delta-plain-1");
        StoredValue.AssertSealed(stored.Kvs[4].Value, "gw-echo-plain-1");

        var atRest = await AtRestFiles.ReadAsync(fixture.SealedEtcd);
        Assert.DoesNotContain(GatewayScenario.PlainValues, atRest.Contains);
    }

    /// <summary>
    /// The scenario's read-only txns with a value compare. The encrypting proxy decides a value compare on plaintext and
    /// commits the txn nested in a guard txn (Encryption/GuardedTxn), which etcd no longer sees as read-only: it goes through
    /// raft, one entry more than etcd spends on the txn itself. Nothing else of the answers may differ.
    /// </summary>
    private const int ReadOnlyValueCompareTxns = 1;

    /// <summary>The reference with each status's raft indexes advanced by <paramref name="entries"/>.</summary>
    private static List<GatewayRecord> WithRaftEntries(IReadOnlyList<GatewayRecord> reference, int entries) =>
        [.. reference.Select(r => r with { Answer = RaftIndexes().Replace(r.Answer, m => $"\"{m.Groups[1].Value}\":\"{long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) + entries}\"") })];

    [GeneratedRegex("\"(raftIndex|raftAppliedIndex)\":\"([0-9]+)\"")]
    private static partial Regex RaftIndexes();

    /// <summary>etcd's write-ahead log and database file as they are now: every value written, in whatever form etcd got it.</summary>
    private sealed class AtRestFiles
    {
        private readonly List<byte[]> _files;

        private AtRestFiles(List<byte[]> files) => _files = files;

        public static async Task<AtRestFiles> ReadAsync(EtcdProcess etcd)
        {
            var member = Path.Combine(etcd.DataDir, "member");
            var files = Directory.EnumerateFiles(Path.Combine(member, "wal"), "*.wal").Select(ReadShared).ToList();

            // bbolt holds an flock on its database that .NET's own open would contend with; cp takes none.
            var copy = Path.Combine(Directory.CreateTempSubdirectory("etcdshield-db-").FullName, "db");
            try
            {
                (await ExternalCommand.RunAsync("/bin/cp", ["--", Path.Combine(member, "snap", "db"), copy])).EnsureSuccess();
                files.Add(await File.ReadAllBytesAsync(copy));
            }
            finally
            {
                Directory.Delete(Path.GetDirectoryName(copy)!, recursive: true);
            }

            return new AtRestFiles(files);
        }

        public bool Contains(string plaintext)
        {
            var needle = Encoding.UTF8.GetBytes(plaintext);
            return _files.Any(file => file.AsSpan().IndexOf(needle) >= 0);
        }

        private static byte[] ReadShared(string file)
        {
            // etcd locks its log files with fcntl, which a shared reader does not contend with.
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            return copy.ToArray();
        }
    }
}
