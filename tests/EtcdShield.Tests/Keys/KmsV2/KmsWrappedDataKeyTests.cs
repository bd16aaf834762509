using EtcdShield.Encryption;
using EtcdShield.Keys.KmsV2;
using EtcdShield.Protocol.KmsV2;
using Google.Protobuf;

namespace EtcdShield.Tests.Keys.KmsV2;

/// <summary>A KMS wrapped DEK has one byte form, and it names the key its envelope's KEK id names.</summary>
public sealed class KmsWrappedDataKeyTests
{
    private const string KeyId = "projects/p/keys/k/versions/1";

    private static readonly string KekId = KmsKeyEncryptionKey.IdFor(KeyId);

    private static EncryptResponse Response()
    {
        var response = new EncryptResponse { Ciphertext = ByteString.CopyFrom(1, 2, 3, 4), KeyId = KeyId };
        response.Annotations["b.example.com/x"] = ByteString.CopyFromUtf8("1");
        response.Annotations["a.example.com/y"] = ByteString.CopyFromUtf8("2");
        return response;
    }

    [Fact]
    public void What_encode_writes_decodes_to_the_same_fields()
    {
        byte[] wrapped = KmsWrappedDataKey.Encode(Response());

        Assert.Equal(Response(), KmsWrappedDataKey.Decode(wrapped, KekId));
    }

    [Fact]
    public void Fields_a_plugin_sent_beyond_the_three_are_not_stored()
    {
        byte[] withUnknown = [.. Response().ToByteArray(), 0x78, 0x01];
        var fromPlugin = EncryptResponse.Parser.ParseFrom(withUnknown);

        Assert.Equal(Response().ToByteArray(), KmsWrappedDataKey.Encode(fromPlugin));
    }

    public static TheoryData<string, byte[]> Reencodings()
    {
        byte[] canonical = Response().ToByteArray();
        return new()
        {
            { "an unknown field appended", [.. canonical, 0x78, 0x01] },
            { "an unknown field first", [0x78, 0x01, .. canonical] },
            { "the ciphertext repeated", [.. canonical, 0x0a, 0x04, 1, 2, 3, 4] },
            { "key_id before ciphertext", Reordered() },
            { "a non-minimal length", [0x0a, 0x84, 0x00, 1, 2, 3, 4, .. canonical.AsSpan(6)] },
        };
    }

    [Theory]
    [MemberData(nameof(Reencodings))]
    public void Every_other_encoding_of_the_same_fields_is_refused(string how, byte[] wrapped)
    {
        // A protobuf parser (the plugin's) reads the genuine fields out of every one of them.
        Assert.Equal(Response().ToByteArray(), KmsWrappedDataKey.Encode(EncryptResponse.Parser.ParseFrom(wrapped)));

        var refused = Assert.Throws<KeyUnwrapException>(() => KmsWrappedDataKey.Decode(wrapped, KekId));
        Assert.Contains("canonical", refused.Message, StringComparison.Ordinal);
        Assert.NotEmpty(how);
    }

    [Theory]
    [InlineData("kms:projects/p/keys/k/versions/2")]
    [InlineData("kms:other")]
    [InlineData("pkcs11:kek")]
    public void A_blob_naming_another_key_than_the_envelope_is_refused(string kekId)
    {
        var refused = Assert.Throws<KeyUnwrapException>(() => KmsWrappedDataKey.Decode(KmsWrappedDataKey.Encode(Response()), kekId));

        Assert.Contains("names another KMS key", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bytes_that_are_not_protobuf_are_refused()
    {
        Assert.Throws<KeyUnwrapException>(() => KmsWrappedDataKey.Decode([0xff, 0xff, 0xff], KekId));
    }

    private static byte[] Reordered()
    {
        var response = Response();
        using var buffer = new MemoryStream();
        var output = new CodedOutputStream(buffer);
        output.WriteTag(2, WireFormat.WireType.LengthDelimited);
        output.WriteString(response.KeyId);
        output.WriteTag(1, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(response.Ciphertext);
        output.Flush();
        byte[] annotations = new EncryptResponse { Annotations = { response.Annotations } }.ToByteArray();
        return [.. buffer.ToArray(), .. annotations];
    }
}
