using EtcdShield.Encryption;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Fuzz;

/// <summary>
/// A value read from etcd, which a storage operator controls: the envelope's structure (<see cref="ValueEnvelope.Parse"/>)
/// and everything the proxy does to open it (KEK lookup, DEK unwrap, authentication). Refusals are
/// <see cref="EnvelopeFormatException"/> from the parser and DATA_LOSS (or UNAVAILABLE) from the protector.
/// </summary>
internal sealed class EnvelopeTarget : FuzzTarget
{
    private static readonly ByteString Key = ByteString.CopyFromUtf8("/registry/secrets/default/fuzz");

    public override string Name => "envelope";

    public override FuzzAction Prepare(string directory)
    {
        var protector = new FuzzKeys().Protector;
        return input =>
        {
            try
            {
                var header = ValueEnvelope.Parse(input);
                _ = header.DataKeyId;
                _ = header.GetKekIdString();
            }
            catch (EnvelopeFormatException)
            {
            }

            try
            {
                protector.UnprotectAsync(Key, ByteString.CopyFrom(input), default, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.DataLoss or StatusCode.Unavailable)
            {
            }
        };
    }

    public override IEnumerable<(string Name, byte[] Bytes)> Seeds(string directory)
    {
        var protector = new FuzzKeys().Protector;
        foreach (var (name, plaintext) in new[] { ("empty", ""), ("short", "v"), ("json", "{\"kind\":\"Secret\",\"data\":{\"a\":\"b\"}}") })
        {
            yield return (name, protector.ProtectAsync(Key, ByteString.CopyFromUtf8(plaintext), null, CancellationToken.None).AsTask().GetAwaiter().GetResult().ToByteArray());
        }

        yield return ("plaintext", "not an envelope"u8.ToArray());
    }
}
