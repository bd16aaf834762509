using EtcdShield.Encryption;
using EtcdShield.Tests.Keys;

namespace EtcdShield.Tests.Encryption;

/// <summary>The layout read once from an envelope gives the same header as parsing it, and opens it.</summary>
public sealed class EnvelopeLayoutTests : IDisposable
{
    private static readonly byte[] EtcdKey = "/registry/secrets/default/db"u8.ToArray();

    private readonly FakeKeyEncryptionKey _kek = new("fake:layout-tests");

    public void Dispose() => _kek.Dispose();

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4096)]
    public async Task The_layout_slices_the_header_as_parsing_does_and_opens_the_value(int size)
    {
        using var key = await EncryptionKey.CreateAsync(_kek, EncryptionKey.MaxWritesCeiling, TimeProvider.System, CancellationToken.None);
        var plaintext = new byte[size];
        new Random(size).NextBytes(plaintext);
        var envelope = ValueEnvelope.Seal(key, EtcdKey, plaintext);

        var layout = ValueEnvelope.Read(envelope);
        var parsed = ValueEnvelope.Parse(envelope);
        var over = layout.Over(envelope);

        Assert.Equal(parsed.Bytes.ToArray(), over.Bytes.ToArray());
        Assert.Equal(parsed.KeyId.ToArray(), over.KeyId.ToArray());
        Assert.Equal("fake:layout-tests", over.GetKekIdString());
        Assert.Equal(parsed.WrappedKey.ToArray(), over.WrappedKey.ToArray());
        Assert.Equal(parsed.Nonce.ToArray(), over.Nonce.ToArray());
        Assert.Equal(size, over.CiphertextLength);
        Assert.Equal(plaintext, ValueEnvelope.Open(key.DataKey, EtcdKey, envelope, layout));
    }

    [Fact]
    public async Task A_layout_is_refused_over_a_value_it_was_not_read_from()
    {
        using var key = await EncryptionKey.CreateAsync(_kek, EncryptionKey.MaxWritesCeiling, TimeProvider.System, CancellationToken.None);
        var shorter = ValueEnvelope.Seal(key, EtcdKey, new byte[3]);
        var layout = ValueEnvelope.Read(ValueEnvelope.Seal(key, EtcdKey, new byte[10]));

        Assert.Throws<ArgumentException>(() => layout.Over(shorter).Length);
    }
}
