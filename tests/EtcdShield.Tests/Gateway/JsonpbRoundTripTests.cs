using System.Collections;
using CsCheck;
using EtcdShield.Api;
using EtcdShield.Gateway;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace EtcdShield.Tests.Gateway;

/// <summary>Whatever the writer writes, the reader reads back as the same message, for every message of the API.</summary>
public sealed class JsonpbRoundTripTests
{
    private static readonly MessageDescriptor[] Types = EtcdApi.Methods
        .SelectMany(m => new[] { m.InputType, m.OutputType })
        .DistinctBy(d => d.FullName)
        .ToArray();

    [Fact]
    public void Every_request_and_response_type_reads_back_what_was_written()
    {
        Gen.Int[0, Types.Length - 1].SelectMany(type => Gen.Int.Select(seed => (type, seed))).Sample(pick =>
        {
            var message = Build(Types[pick.type], new Random(pick.seed), depth: 0);

            var read = JsonpbReader.Read(message.Descriptor, JsonpbWriter.ToUtf8Bytes(message));

            Assert.Equal(message, read);
        }, iter: 3000);
    }

    // A message with random values in about half its fields, a oneof member (zero included) now and then.
    private static IMessage Build(MessageDescriptor descriptor, Random random, int depth)
    {
        var message = descriptor.Parser.ParseFrom(ByteString.Empty);
        foreach (var field in descriptor.Fields.InDeclarationOrder())
        {
            if (random.Next(2) == 0 || (field.FieldType == FieldType.Message && depth > 4))
            {
                continue;
            }

            if (field.IsRepeated)
            {
                var list = (IList)field.Accessor.GetValue(message);
                for (var i = random.Next(4); i > 0; i--)
                {
                    list.Add(Value(field, random, depth));
                }
            }
            else
            {
                field.Accessor.SetValue(message, Value(field, random, depth));
            }
        }

        return message;
    }

    private const string Characters = "a<&>\"\\\n\u0001é\u2028☃";

    private static object Value(FieldDescriptor field, Random random, int depth)
    {
        var zero = random.Next(5) == 0;
        return field.FieldType switch
        {
            FieldType.Message => Build(field.MessageType, random, depth + 1),
            FieldType.Bool => !zero && random.Next(2) == 0,
            FieldType.Int32 => zero ? 0 : random.Next(int.MinValue, int.MaxValue),
            FieldType.UInt32 => zero ? 0u : (uint)random.NextInt64(0, uint.MaxValue + 1L),
            FieldType.Int64 => zero ? 0L : random.NextInt64(long.MinValue, long.MaxValue),
            FieldType.UInt64 => zero ? 0UL : (ulong)random.NextInt64(long.MinValue, long.MaxValue),
            FieldType.Enum => zero ? 0 : field.EnumType.Values[random.Next(field.EnumType.Values.Count)].Number + (random.Next(10) == 0 ? 100 : 0),
            FieldType.String => zero ? string.Empty : new string(Enumerable.Range(0, random.Next(12)).Select(_ => Characters[random.Next(Characters.Length)]).ToArray()),
            FieldType.Bytes => zero ? ByteString.Empty : ByteString.CopyFrom(Enumerable.Range(0, random.Next(12)).Select(_ => (byte)random.Next(256)).ToArray()),
            _ => throw new NotSupportedException(field.FullName),
        };
    }
}
