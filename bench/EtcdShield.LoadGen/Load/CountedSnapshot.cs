using System.Buffers;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>What the client keeps of one SnapshotResponse: its fields' sizes, not its bytes.</summary>
internal sealed record SnapshotChunk(ulong RemainingBytes, int BlobLength);

/// <summary>
/// Maintenance.Snapshot with a response marshaller that reads the two fields it needs off the wire and drops the
/// blob: parsing a gigabyte into ByteStrings would cost the load generator CPU that, on two cores, the processes
/// under test would miss. Every target is read through the same method, so it is the same discount for all.
/// </summary>
internal static class CountedSnapshot
{
    public static Method<SnapshotRequest, SnapshotChunk> Method { get; } = new(
        MethodType.ServerStreaming,
        "etcdserverpb.Maintenance",
        "Snapshot",
        Marshallers.Create(r => r.ToByteArray(), SnapshotRequest.Parser.ParseFrom),
        Marshallers.Create<SnapshotChunk>((_, _) => throw new NotSupportedException("the bench never sends a SnapshotResponse"), Parse));

    /// <summary>Fields of etcd's SnapshotResponse: 1 header, 2 remaining_bytes, 3 blob, 4 version (3.5+); any other is skipped.</summary>
    private static SnapshotChunk Parse(DeserializationContext context)
    {
        var reader = new SequenceReader<byte>(context.PayloadAsReadOnlySequence());
        ulong remaining = 0;
        var blob = 0;
        while (!reader.End)
        {
            var tag = ReadVarint(ref reader);
            var field = tag >> 3;
            switch ((WireFormat.WireType)(tag & 7))
            {
                case WireFormat.WireType.Varint:
                    var value = ReadVarint(ref reader);
                    remaining = field == 2 ? value : remaining;
                    break;
                case WireFormat.WireType.LengthDelimited:
                    var length = checked((long)ReadVarint(ref reader));
                    blob = field == 3 ? checked((int)length) : blob;
                    reader.Advance(length);
                    break;
                case WireFormat.WireType.Fixed64:
                    reader.Advance(8);
                    break;
                case WireFormat.WireType.Fixed32:
                    reader.Advance(4);
                    break;
                default:
                    throw new InvalidDataException($"wire type {tag & 7} in a SnapshotResponse");
            }
        }

        return new SnapshotChunk(remaining, blob);
    }

    private static ulong ReadVarint(ref SequenceReader<byte> reader)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                throw new InvalidDataException("a SnapshotResponse ends inside a varint");
            }

            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw new InvalidDataException("a varint longer than 10 bytes in a SnapshotResponse");
    }
}
