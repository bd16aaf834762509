using System.Buffers.Binary;
using System.Text;
using EtcdShield.Encryption;
using EtcdShield.Tests.Keys;

namespace EtcdShield.Tests.Encryption;

public sealed class ValueEnvelopeTests : IDisposable
{
    private static readonly byte[] EtcdKey = "/registry/secrets/default/db"u8.ToArray();

    private readonly FakeKeyEncryptionKey _kek = new("fake:envelope-tests");

    public void Dispose() => _kek.Dispose();

    private async Task<EncryptionKey> NewKeyAsync(long maxWrites = EncryptionKey.MaxWritesCeiling) =>
        await EncryptionKey.CreateAsync(_kek, maxWrites, TimeProvider.System, CancellationToken.None);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(256)]
    [InlineData(1024)]
    [InlineData(16384)]
    [InlineData(1536 * 1024)]
    public async Task Seal_then_open_returns_the_plaintext(int size)
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] plaintext = new byte[size];
        new Random(size).NextBytes(plaintext);

        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, plaintext);

        Assert.Equal(ValueEnvelope.SealedLength(key, size), envelope.Length);
        Assert.True(ValueEnvelope.HasEnvelopePrefix(envelope));
        Assert.Equal(plaintext, ValueEnvelope.Open(key.DataKey, EtcdKey, envelope));
        if (size >= 16)
        {
            Assert.False(envelope.AsSpan().IndexOf(plaintext.AsSpan(0, 16)) >= 0, "plaintext is visible in the envelope");
        }
    }

    [Fact]
    public async Task Empty_plaintext_seals_to_a_non_empty_envelope()
    {
        using EncryptionKey key = await NewKeyAsync();

        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, []);

        Assert.Equal(key.DataKey.HeaderLength + ValueEnvelope.TagSize, envelope.Length);
        Assert.Empty(ValueEnvelope.Open(key.DataKey, EtcdKey, envelope));
    }

    [Fact]
    public async Task Header_fields_are_laid_out_as_documented()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "value"u8);

        EnvelopeHeader header = ValueEnvelope.Parse(envelope);

        Assert.Equal("ESH\x01"u8.ToArray(), envelope[..4]);
        Assert.Equal(ValueEnvelope.Version1, header.Version);
        Assert.Equal(16, envelope[4]);
        Assert.Equal(key.DataKey.IdBytes.ToArray(), header.KeyId.ToArray());
        Assert.Equal(_kek.Id, header.GetKekIdString());
        Assert.Equal(key.DataKey.WrappedKey.ToArray(), header.WrappedKey.ToArray());
        Assert.Equal(40, header.WrappedKey.Length);
        Assert.Equal(5, header.CiphertextLength);
        Assert.Equal(envelope.Length - 5 - 16, header.Length);
    }

    [Fact]
    public async Task Long_etcd_keys_use_the_pooled_associated_data_path()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] longKey = new byte[1536 * 1024];
        new Random(7).NextBytes(longKey);
        byte[] otherLongKey = (byte[])longKey.Clone();
        otherLongKey[^1] ^= 0x80;

        byte[] envelope = ValueEnvelope.Seal(key, longKey, "v"u8);

        Assert.Equal("v"u8.ToArray(), ValueEnvelope.Open(key.DataKey, longKey, envelope));
        Assert.IsType<EnvelopeAuthenticationException>(EnvelopeAssert.OpenFails(key.DataKey, otherLongKey, envelope));
    }

    [Theory]
    [InlineData("")]
    [InlineData("E")]
    [InlineData("ESH")]
    [InlineData("plain value")]
    [InlineData("esh\x01")]
    public void Values_without_the_magic_and_a_version_byte_are_not_envelopes(string value)
    {
        Assert.False(ValueEnvelope.HasEnvelopePrefix(Encoding.ASCII.GetBytes(value)));
    }

    [Theory]
    [InlineData("ESH\x01")]
    [InlineData("ESH\x02")]
    [InlineData("ESH\x00 anything")]
    public void Any_value_with_the_magic_and_a_version_byte_claims_to_be_an_envelope(string value)
    {
        Assert.True(ValueEnvelope.HasEnvelopePrefix(Encoding.ASCII.GetBytes(value)));
    }

    [Fact]
    public async Task Parse_rejects_unknown_versions_without_echoing_value_bytes()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "value"u8);
        envelope[3] = 0x73; // 's': a legacy plaintext "ESHs..." must not have its bytes echoed back

        var ex = Assert.Throws<EnvelopeFormatException>(() => ValueEnvelope.Parse(envelope));

        Assert.Equal(EnvelopeErrorReason.UnsupportedVersion, ex.Reason);
        Assert.DoesNotContain("115", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("0x73", ex.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, int, byte> StructuralCorruptions => new()
    {
        { "key id length", 4, 15 },
        { "key id length", 4, 17 },
        { "kek id length", 21, 0 },
        { "kek id byte", 22, 0x20 },
        { "kek id byte", 22, 0x7F },
        { "kek id byte", 22, 0xC3 },
    };

    [Theory]
    [MemberData(nameof(StructuralCorruptions))]
    public async Task Parse_rejects_structural_corruption_as_malformed(string what, int offset, byte replacement)
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "value"u8);
        envelope[offset] = replacement;

        var ex = Assert.Throws<EnvelopeFormatException>(() => ValueEnvelope.Parse(envelope));

        Assert.Equal(EnvelopeErrorReason.Malformed, ex.Reason);
        Assert.False(string.IsNullOrEmpty(what));
    }

    [Fact]
    public async Task Parse_rejects_wrapped_key_lengths_that_do_not_fit()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "value"u8);
        int wrappedLengthOffset = ValueEnvelope.KekIdOffset + _kek.Id.Length;

        BinaryPrimitives.WriteUInt16BigEndian(envelope.AsSpan(wrappedLengthOffset), 0);
        Assert.Equal(EnvelopeErrorReason.Malformed, Assert.Throws<EnvelopeFormatException>(() => ValueEnvelope.Parse(envelope)).Reason);

        BinaryPrimitives.WriteUInt16BigEndian(envelope.AsSpan(wrappedLengthOffset), ushort.MaxValue);
        Assert.Equal(EnvelopeErrorReason.Malformed, Assert.Throws<EnvelopeFormatException>(() => ValueEnvelope.Parse(envelope)).Reason);
    }

    [Fact]
    public async Task Opening_under_another_etcd_key_fails_authentication()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "s3cr3t"u8);

        foreach (string other in new[] { "/registry/secrets/default/db2", "/registry/secrets/default/d", "", "/registry/secrets/kube-system/db" })
        {
            var ex = EnvelopeAssert.OpenFails(key.DataKey, Encoding.UTF8.GetBytes(other), envelope);
            Assert.Equal(EnvelopeErrorReason.AuthenticationFailed, ex.Reason);
        }
    }

    [Fact]
    public async Task Opening_with_another_data_key_fails_before_decrypting()
    {
        using EncryptionKey key = await NewKeyAsync();
        using EncryptionKey other = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "s3cr3t"u8);

        var ex = Assert.IsType<EnvelopeAuthenticationException>(EnvelopeAssert.OpenFails(other.DataKey, EtcdKey, envelope));

        Assert.Contains("different data key", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_single_bit_flip_anywhere_in_the_envelope_is_rejected()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "a value of moderate length, 40 bytes...."u8);

        for (int bit = 0; bit < envelope.Length * 8; bit++)
        {
            byte[] tampered = (byte[])envelope.Clone();
            tampered[bit / 8] ^= (byte)(1 << (bit % 8));
            EnvelopeAssert.OpenFails(key.DataKey, EtcdKey, tampered);
        }
    }

    [Fact]
    public async Task Random_bit_flips_over_many_random_envelopes_are_rejected()
    {
        var random = new Random(20240601);
        using EncryptionKey key = await NewKeyAsync();

        for (int i = 0; i < 300; i++)
        {
            byte[] plaintext = new byte[random.Next(0, 600)];
            random.NextBytes(plaintext);
            byte[] etcdKey = new byte[random.Next(0, 64)];
            random.NextBytes(etcdKey);
            byte[] envelope = ValueEnvelope.Seal(key, etcdKey, plaintext);
            Assert.Equal(plaintext, ValueEnvelope.Open(key.DataKey, etcdKey, envelope));

            for (int flip = 0; flip < 20; flip++)
            {
                byte[] tampered = (byte[])envelope.Clone();
                tampered[random.Next(tampered.Length)] ^= (byte)(1 << random.Next(8));
                EnvelopeAssert.OpenFails(key.DataKey, etcdKey, tampered);
            }
        }
    }

    [Fact]
    public async Task Every_truncation_and_any_extension_is_rejected()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "s3cr3t value"u8);

        for (int length = 0; length < envelope.Length; length++)
        {
            Assert.ThrowsAny<EnvelopeException>(() => ValueEnvelope.Open(key.DataKey, EtcdKey, envelope.AsSpan(0, length)));
        }

        byte[] extended = [.. envelope, 0];
        EnvelopeAssert.OpenFails(key.DataKey, EtcdKey, extended);
    }

    [Fact]
    public async Task Replacing_the_key_id_with_another_keys_id_is_rejected()
    {
        using EncryptionKey key = await NewKeyAsync();
        using EncryptionKey other = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "s3cr3t"u8);
        byte[] relabelled = (byte[])envelope.Clone();
        other.DataKey.IdBytes.CopyTo(relabelled.AsSpan(5));

        // Whichever key the relabelled value is offered to, it does not open.
        EnvelopeAssert.OpenFails(key.DataKey, EtcdKey, relabelled);
        EnvelopeAssert.OpenFails(other.DataKey, EtcdKey, relabelled);
    }

    [Fact]
    public async Task Changing_the_kek_id_or_wrapped_key_is_rejected_even_with_the_right_data_key()
    {
        using EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "s3cr3t"u8);
        EnvelopeHeader header = ValueEnvelope.Parse(envelope);
        byte[] ciphertextAndTag = envelope[header.Length..];
        byte[] nonce = header.Nonce.ToArray();
        byte[] wrapped = header.WrappedKey.ToArray();

        byte[] sameLengthKekId = Rebuild(key.DataKey, "fake:envelope-testz", wrapped, nonce, ciphertextAndTag);
        byte[] longerKekId = Rebuild(key.DataKey, "fake:envelope-tests-2", wrapped, nonce, ciphertextAndTag);
        byte[] flippedWrapped = (byte[])wrapped.Clone();
        flippedWrapped[0] ^= 1;
        byte[] changedWrapped = Rebuild(key.DataKey, _kek.Id, flippedWrapped, nonce, ciphertextAndTag);
        byte[] longerWrapped = Rebuild(key.DataKey, _kek.Id, [.. wrapped, 0], nonce, ciphertextAndTag);

        Assert.Equal(envelope, Rebuild(key.DataKey, _kek.Id, wrapped, nonce, ciphertextAndTag));
        foreach (byte[] tampered in new[] { sameLengthKekId, longerKekId, changedWrapped, longerWrapped })
        {
            Assert.IsType<EnvelopeAuthenticationException>(EnvelopeAssert.OpenFails(key.DataKey, EtcdKey, tampered));
        }
    }

    [Fact]
    public async Task Nonces_never_repeat_across_100k_seals()
    {
        using EncryptionKey key = await NewKeyAsync();
        int nonceOffset = key.DataKey.HeaderLength - ValueEnvelope.NonceSize;
        var seen = new HashSet<(uint, ulong)>();

        for (int i = 0; i < 100_000; i++)
        {
            byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "v"u8);
            ReadOnlySpan<byte> nonce = envelope.AsSpan(nonceOffset, ValueEnvelope.NonceSize);
            Assert.True(seen.Add((BinaryPrimitives.ReadUInt32BigEndian(nonce), BinaryPrimitives.ReadUInt64BigEndian(nonce[4..]))));
        }

        Assert.Equal(100_000, key.WriteCount);
    }

    [Fact]
    public async Task Concurrent_seals_take_distinct_consecutive_counters()
    {
        using EncryptionKey key = await NewKeyAsync();
        int nonceOffset = key.DataKey.HeaderLength - ValueEnvelope.NonceSize;
        const int Seals = 100_000;
        var counters = new ulong[Seals];
        var prefixes = new uint[Seals];

        Parallel.For(0, Seals, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "v"u8);
            prefixes[i] = BinaryPrimitives.ReadUInt32BigEndian(envelope.AsSpan(nonceOffset));
            counters[i] = BinaryPrimitives.ReadUInt64BigEndian(envelope.AsSpan(nonceOffset + 4));
            Assert.Equal("v"u8.ToArray(), ValueEnvelope.Open(key.DataKey, EtcdKey, envelope));
        });

        Array.Sort(counters);
        for (int i = 0; i < Seals; i++)
        {
            Assert.Equal((ulong)i, counters[i]);
        }

        Assert.Single(prefixes.Distinct());
    }

    [Fact]
    public async Task A_key_stops_sealing_at_its_write_limit()
    {
        using EncryptionKey key = await NewKeyAsync(maxWrites: 3);

        for (int i = 0; i < 3; i++)
        {
            Assert.True(ValueEnvelope.TrySeal(key, EtcdKey, "v"u8, out _));
        }

        Assert.True(key.IsExhausted);
        Assert.False(ValueEnvelope.TrySeal(key, EtcdKey, "v"u8, out byte[]? refused));
        Assert.Null(refused);
        Assert.Throws<InvalidOperationException>(() => ValueEnvelope.Seal(key, EtcdKey, "v"u8));
        Assert.Equal(3, key.WriteCount);
    }

    [Fact]
    public async Task A_disposed_key_neither_seals_nor_opens()
    {
        EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "v"u8);

        key.Dispose();

        Assert.True(key.DataKey.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => ValueEnvelope.Seal(key, EtcdKey, "v"u8));
        Assert.Throws<ObjectDisposedException>(() => ValueEnvelope.Open(key.DataKey, EtcdKey, envelope));
        Assert.Throws<ObjectDisposedException>(() => key.DataKey.Duplicate());
    }

    [Fact]
    public async Task A_duplicated_key_outlives_the_original()
    {
        EncryptionKey key = await NewKeyAsync();
        byte[] envelope = ValueEnvelope.Seal(key, EtcdKey, "v"u8);
        using DataKey copy = key.DataKey.Duplicate();

        key.Dispose();

        Assert.Equal(key.DataKey.Id, copy.Id);
        Assert.Equal("v"u8.ToArray(), ValueEnvelope.Open(copy, EtcdKey, envelope));
    }

    [Fact]
    public void Only_encryption_keys_can_seal_and_they_cannot_be_built_from_existing_bytes()
    {
        var sealers = typeof(ValueEnvelope).GetMethods().Where(m => m.Name.Contains("Seal", StringComparison.Ordinal) && m.Name != nameof(ValueEnvelope.SealedLength));
        Assert.All(sealers, m => Assert.Equal(typeof(EncryptionKey), m.GetParameters()[0].ParameterType));

        var flags = System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance;
        Assert.All(typeof(EncryptionKey).GetConstructors(flags), c => Assert.True(c.IsPrivate));
        Assert.DoesNotContain(typeof(DataKey).GetMethods(flags), m => m.Name.Contains("Nonce", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Key_creation_fails_closed_when_the_kek_wraps_wrongly()
    {
        _kek.CorruptWraps = true;

        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => NewKeyAsync());
    }

    [Fact]
    public async Task Nonce_is_the_random_prefix_followed_by_the_big_endian_counter()
    {
        using EncryptionKey key = await NewKeyAsync();

        byte[] first = ValueEnvelope.Seal(key, EtcdKey, "v"u8);
        byte[] second = ValueEnvelope.Seal(key, EtcdKey, "v"u8);
        byte[] firstNonce = ValueEnvelope.Parse(first).Nonce.ToArray();
        byte[] secondNonce = ValueEnvelope.Parse(second).Nonce.ToArray();

        Assert.Equal(firstNonce[..4], secondNonce[..4]);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64BigEndian(firstNonce.AsSpan(4)));
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64BigEndian(secondNonce.AsSpan(4)));
    }

    private static byte[] Rebuild(DataKey key, string kekId, byte[] wrapped, byte[] nonce, byte[] ciphertextAndTag)
    {
        byte[] prefix = ValueEnvelope.CreateHeaderPrefix(key.Id, kekId, wrapped, out _);
        return [.. prefix, .. nonce, .. ciphertextAndTag];
    }
}
