using System.Buffers;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace EtcdShield.Relay;

/// <summary>
/// A message whose bytes are already encoded, sent as they are: a shared body encoded once for many clients, and
/// before it one int64 field of the client's own (a watch's <c>watch_id</c>, field 2). Protobuf allows fields in
/// any order and a field to appear once, so the prefix and the body together are one valid message as long as the
/// body never holds the prefix's field. Building one costs one small object; the body is never copied.
/// </summary>
internal sealed class EncodedMessage : IMessage
{
    private readonly byte _prefixTag;
    private readonly long _prefixValue;

    /// <param name="prefixField">The field number written before the body, or 0 for none; it is left out when its value is 0, as protobuf leaves out a default.</param>
    public EncodedMessage(MessageDescriptor descriptor, ReadOnlyMemory<byte> body, int prefixField = 0, long prefixValue = 0)
    {
        if (prefixField is < 0 or > 15)
        {
            throw new ArgumentOutOfRangeException(nameof(prefixField), "a one-byte varint tag (fields 1 to 15) or 0");
        }

        Descriptor = descriptor;
        Body = body;
        _prefixTag = prefixField == 0 || prefixValue == 0 ? (byte)0 : (byte)(prefixField << 3);
        _prefixValue = prefixValue;
    }

    public MessageDescriptor Descriptor { get; }

    /// <summary>The shared part of the encoding.</summary>
    public ReadOnlyMemory<byte> Body { get; }

    public int CalculateSize() => (_prefixTag == 0 ? 0 : 1 + CodedOutputStream.ComputeInt64Size(_prefixValue)) + Body.Length;

    /// <summary>Writes the message's bytes, the prefix first: what the relay's marshaller sends.</summary>
    public void WriteTo(IBufferWriter<byte> output)
    {
        if (_prefixTag != 0)
        {
            var span = output.GetSpan(11);
            span[0] = _prefixTag;
            var length = 1;
            var value = (ulong)_prefixValue;
            while (value >= 0x80)
            {
                span[length++] = (byte)(value | 0x80);
                value >>= 7;
            }

            span[length++] = (byte)value;
            output.Advance(length);
        }

        output.Write(Body.Span);
    }

    /// <summary>The message parsed back, for a writer that needs its fields (the gateway's JSON).</summary>
    public IMessage Parse()
    {
        var bytes = new ArrayBufferWriter<byte>(CalculateSize());
        WriteTo(bytes);
        return Descriptor.Parser.ParseFrom(bytes.WrittenSpan);
    }

    public void WriteTo(CodedOutputStream output) => Parse().WriteTo(output);

    public void MergeFrom(CodedInputStream input) => throw new NotSupportedException("an encoded message is only ever written");

    /// <summary>Its bytes, for tests.</summary>
    internal byte[] ToArray()
    {
        var bytes = new ArrayBufferWriter<byte>(CalculateSize());
        WriteTo(bytes);
        return bytes.WrittenSpan.ToArray();
    }
}
