using System.Text.RegularExpressions;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using Google.Protobuf;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Encryption;

/// <summary>The published test vector in docs/value-format.md, reproduced byte for byte.</summary>
public sealed partial class TestVectorTests
{
    private const string KekHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    private const string DekHex = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
    private const string NoncePrefixHex = "deadbeef";
    private const long Counter = 42;
    private const string EtcdKey = "/registry/secrets/default/db";
    private const string Plaintext = "s3cr3t";

    private const string ExpectedKekId = "file:a389e25b58bd9ac9";
    private const string ExpectedKeyIdHex = "84db5893ec1cbf71d75646d4c75e21c8";
    private const string ExpectedWrappedHex = "92f48c52045c08050ec796a5a91c5ddaf7c61cbdc940adc8d3dc8a144f6161a8c5d3299e325f1750";
    private const string ExpectedNonceHex = "deadbeef000000000000002a";
    private const string ExpectedEnvelopeHex =
        "455348011084db5893ec1cbf71d75646d4c75e21c81566696c653a6133383965"
        + "3235623538626439616339002892f48c52045c08050ec796a5a91c5ddaf7c61c"
        + "bdc940adc8d3dc8a144f6161a8c5d3299e325f1750deadbeef00000000000000"
        + "2a89470573219fb06705050de4e375dbc14147cdd15436";

    [Fact]
    public async Task Sealing_the_fixed_inputs_reproduces_the_published_envelope()
    {
        using var kek = FileKeyEncryptionKey.FromKey(Convert.FromHexString(KekHex));
        byte[] dek = Convert.FromHexString(DekHex);

        byte[] wrapped = await kek.WrapAsync(dek, CancellationToken.None);
        using var key = EncryptionKey.CreateDeterministicForTestVector(dek, kek.Id, wrapped, Convert.FromHexString(NoncePrefixHex), Counter);
        byte[] envelope = ValueEnvelope.Seal(key, "/registry/secrets/default/db"u8, "s3cr3t"u8);

        Assert.Equal(ExpectedKekId, kek.Id);
        Assert.Equal(ExpectedWrappedHex, Convert.ToHexStringLower(wrapped));
        Assert.Equal(ExpectedKeyIdHex, key.DataKey.Id.ToString());
        Assert.Equal(ExpectedNonceHex, Convert.ToHexStringLower(ValueEnvelope.Parse(envelope).Nonce));
        Assert.Equal(ExpectedEnvelopeHex, Convert.ToHexStringLower(envelope));
        Assert.Equal(Plaintext.Length + 113, envelope.Length);
    }

    // Version 2 (rollback protection): the same inputs, bound to version 7 of the key's lifetime created at revision 1234.
    private const long BoundCreateRevision = 1234;
    private const long BoundVersion = 7;
    private const string ExpectedBoundEnvelopeHex =
        "455348021084db5893ec1cbf71d75646d4c75e21c81566696c653a6133383965"
        + "3235623538626439616339002892f48c52045c08050ec796a5a91c5ddaf7c61c"
        + "bdc940adc8d3dc8a144f6161a8c5d3299e325f175000000000000004d2000000"
        + "0000000007deadbeef000000000000002a89470573219f118729fe8ad088fa46"
        + "df78e7b6f52ca4";

    [Fact]
    public async Task Sealing_the_fixed_inputs_for_a_place_reproduces_the_published_v2_envelope()
    {
        using var kek = FileKeyEncryptionKey.FromKey(Convert.FromHexString(KekHex));
        byte[] dek = Convert.FromHexString(DekHex);

        byte[] wrapped = await kek.WrapAsync(dek, CancellationToken.None);
        using var key = EncryptionKey.CreateDeterministicForTestVector(dek, kek.Id, wrapped, Convert.FromHexString(NoncePrefixHex), Counter);
        byte[] envelope = ValueEnvelope.Seal(key, "/registry/secrets/default/db"u8, "s3cr3t"u8, new KeyPlace(BoundCreateRevision, BoundVersion));

        Assert.Equal(ExpectedBoundEnvelopeHex, Convert.ToHexStringLower(envelope));
        Assert.Equal(new KeyPlace(BoundCreateRevision, BoundVersion), ValueEnvelope.Parse(envelope).Place);
        Assert.Equal(Plaintext.Length + 113 + ValueEnvelope.PlaceLength, envelope.Length);
    }

    [Fact]
    public async Task A_cold_proxy_holding_only_the_kek_reads_the_published_envelope()
    {
        using var kek = FileKeyEncryptionKey.FromKey(Convert.FromHexString(KekHex));
        using var meters = TestMeterFactory.Create();
        using var unwraps = new MetricCollector<long>(meters, KeyMetrics.MeterName, "etcdshield.keys.kek_unwraps");
        var metrics = new EncryptionMetrics(meters);
        using var keys = new DataKeyManager(new KeyRing(kek), DataKeyOptions.Default, TimeProvider.System, new KeyMetrics(meters), NullLogger<DataKeyManager>.Instance);
        var protector = new ValueProtector(EncryptionOptions.Default, keys, metrics, NullLogger<ValueProtector>.Instance);

        ByteString plaintext = await protector.UnprotectAsync(
            ByteString.CopyFromUtf8(EtcdKey),
            ByteString.CopyFrom(Convert.FromHexString(ExpectedEnvelopeHex)),
            default,
            CancellationToken.None);

        Assert.Equal(Plaintext, plaintext.ToStringUtf8());
        Assert.Equal(1, unwraps.Counted("outcome", "success"));
    }

    [Fact]
    public void The_spec_publishes_the_same_values()
    {
        string doc = WhiteSpace().Replace(File.ReadAllText(RepositoryFile.Find(Path.Combine("docs", "value-format.md"))), string.Empty);

        foreach (string expected in new[] { KekHex, DekHex, ExpectedKekId, ExpectedKeyIdHex, ExpectedWrappedHex, ExpectedNonceHex, ExpectedEnvelopeHex, ExpectedBoundEnvelopeHex })
        {
            Assert.Contains(expected, doc, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Production_code_never_calls_the_test_vector_factory()
    {
        string src = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(RepositoryFile.Find(Path.Combine("docs", "value-format.md"))))!, "src");

        var callers = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Where(f => Path.GetFileName(f) != "EncryptionKey.cs")
            .Where(f => File.ReadAllText(f).Contains(nameof(EncryptionKey.CreateDeterministicForTestVector), StringComparison.Ordinal));

        Assert.Empty(callers);
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex WhiteSpace();
}
