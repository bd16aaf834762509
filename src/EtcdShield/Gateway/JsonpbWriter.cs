using System.Buffers;
using System.Buffers.Text;
using System.Collections;
using System.Collections.Concurrent;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace EtcdShield.Gateway;

/// <summary>
/// Writes a message as etcd's gateway does (grpc-gateway v1, golang/protobuf 1.3 jsonpb with OrigName): compact,
/// proto field names in declaration order, 64-bit integers quoted, enums by name, bytes as padded standard base64,
/// proto3 defaults omitted (a set message field or oneof member is written even when empty), and strings escaped
/// as Go's encoding/json escapes them. Google.Protobuf's JsonFormatter differs in spacing and escaping, so this
/// walks the descriptors itself, with each message type's fields prepared once.
/// </summary>
internal static class JsonpbWriter
{
    private static readonly ConcurrentDictionary<MessageDescriptor, WriterField[]> Plans = new();

    public static void Write(IMessage message, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(output);
        WriteMessage(message, output);
    }

    public static byte[] ToUtf8Bytes(IMessage message)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        Write(message, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>A JSON string literal, quotes included, escaped as Go 1.19's encoding/json (HTML-safe) escapes it.</summary>
    public static void WriteString(ReadOnlySpan<char> value, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        WriteByte(output, (byte)'"');
        var i = 0;
        while (i < value.Length)
        {
            // The longest run of characters written as their UTF-8, transcoded in one go.
            var run = i;
            while (run < value.Length && IsRaw(value, ref run))
            {
            }

            if (run > i)
            {
                var chars = value[i..run];
                var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(chars.Length));
                output.Advance(Encoding.UTF8.GetBytes(chars, span));
                i = run;
                continue;
            }

            WriteEscape(value[i], output);
            i++;
        }

        WriteByte(output, (byte)'"');
    }

    // Advances past value[at] (and its low surrogate) when Go writes it as it is; false when it needs an escape.
    private static bool IsRaw(ReadOnlySpan<char> value, ref int at)
    {
        var c = value[at];
        if (c < 0x80)
        {
            if (c < 0x20 || c is '"' or '\\' or '<' or '>' or '&')
            {
                return false;
            }

            at++;
            return true;
        }

        if (c is '\u2028' or '\u2029')
        {
            return false;
        }

        if (char.IsHighSurrogate(c))
        {
            if (at + 1 < value.Length && char.IsLowSurrogate(value[at + 1]))
            {
                at += 2;
                return true;
            }

            return false;
        }

        if (char.IsLowSurrogate(c))
        {
            return false;
        }

        at++;
        return true;
    }

    private static void WriteEscape(char c, IBufferWriter<byte> output)
    {
        ReadOnlySpan<byte> hex = "0123456789abcdef"u8;
        var span = output.GetSpan(6);
        span[0] = (byte)'\\';
        switch (c)
        {
            case '"' or '\\':
                span[1] = (byte)c;
                output.Advance(2);
                return;
            case '\n':
                span[1] = (byte)'n';
                output.Advance(2);
                return;
            case '\r':
                span[1] = (byte)'r';
                output.Advance(2);
                return;
            case '\t':
                span[1] = (byte)'t';
                output.Advance(2);
                return;
            default:
                break;
        }

        // Control characters, < > &, U+2028/U+2029, and a lone surrogate (Go's invalid UTF-8) as U+FFFD.
        var code = char.IsSurrogate(c) ? '\ufffd' : c;
        span[1] = (byte)'u';
        span[2] = hex[(code >> 12) & 0xF];
        span[3] = hex[(code >> 8) & 0xF];
        span[4] = hex[(code >> 4) & 0xF];
        span[5] = hex[code & 0xF];
        output.Advance(6);
    }

    private static void WriteMessage(IMessage message, IBufferWriter<byte> output)
    {
        var fields = Plans.GetOrAdd(message.Descriptor, WriterField.Plan);
        WriteByte(output, (byte)'{');
        var first = true;
        foreach (var field in fields)
        {
            object? value;
            if (field.Oneof is { } oneof)
            {
                if (oneof.Accessor.GetCaseFieldDescriptor(message) != field.Descriptor)
                {
                    continue;
                }

                value = field.Accessor.GetValue(message);
            }
            else
            {
                value = field.Accessor.GetValue(message);
                if (IsOmitted(field, value))
                {
                    continue;
                }
            }

            if (!first)
            {
                WriteByte(output, (byte)',');
            }

            first = false;
            output.Write(field.Key);
            if (field.Descriptor.IsRepeated)
            {
                WriteByte(output, (byte)'[');
                var list = (IList)value!;
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0)
                    {
                        WriteByte(output, (byte)',');
                    }

                    WriteValue(field, list[i]!, output);
                }

                WriteByte(output, (byte)']');
            }
            else
            {
                WriteValue(field, value!, output);
            }
        }

        WriteByte(output, (byte)'}');
    }

    // Go's "omitempty" of jsonpb without EmitDefaults: zero scalars, empty strings and bytes, empty lists, unset messages.
    private static bool IsOmitted(WriterField field, object? value)
    {
        if (field.Descriptor.IsRepeated)
        {
            return ((IList)value!).Count == 0;
        }

        return field.Kind switch
        {
            ValueKind.Message => value is null,
            ValueKind.Bool => !(bool)value!,
            ValueKind.Int32 => (int)value! == 0,
            ValueKind.UInt32 => (uint)value! == 0,
            ValueKind.Int64 => (long)value! == 0,
            ValueKind.UInt64 => (ulong)value! == 0,
            // A boxed enum unboxes as its underlying int.
            ValueKind.Enum => (int)value! == 0,
            ValueKind.String => ((string)value!).Length == 0,
            ValueKind.Bytes => ((ByteString)value!).IsEmpty,
            _ => false,
        };
    }

    private static void WriteValue(WriterField field, object value, IBufferWriter<byte> output)
    {
        switch (field.Kind)
        {
            case ValueKind.Message:
                WriteMessage((IMessage)value, output);
                break;
            case ValueKind.Bool:
                output.Write((bool)value ? "true"u8 : "false"u8);
                break;
            case ValueKind.Int32:
                WriteNumber((int)value, output);
                break;
            case ValueKind.UInt32:
                WriteNumber((uint)value, output);
                break;
            case ValueKind.Int64:
                WriteQuotedNumber((long)value, output);
                break;
            case ValueKind.UInt64:
                WriteQuotedNumber((ulong)value, output);
                break;
            case ValueKind.Enum:
                var number = (int)value;
                if (field.EnumNames!.TryGetValue(number, out var name))
                {
                    output.Write(name);
                }
                else
                {
                    // Go writes a number without a name bare, so that it is not read back as a name.
                    WriteNumber(number, output);
                }

                break;
            case ValueKind.String:
                WriteString((string)value, output);
                break;
            case ValueKind.Bytes:
                WriteBase64(((ByteString)value).Span, output);
                break;
            default:
                throw new InvalidOperationException($"field {field.Descriptor.Name} has no JSON form");
        }
    }

    private static void WriteNumber(long value, IBufferWriter<byte> output)
    {
        var span = output.GetSpan(20);
        Utf8Formatter.TryFormat(value, span, out var written);
        output.Advance(written);
    }

    private static void WriteQuotedNumber(long value, IBufferWriter<byte> output)
    {
        var span = output.GetSpan(22);
        span[0] = (byte)'"';
        Utf8Formatter.TryFormat(value, span[1..], out var written);
        span[written + 1] = (byte)'"';
        output.Advance(written + 2);
    }

    private static void WriteQuotedNumber(ulong value, IBufferWriter<byte> output)
    {
        var span = output.GetSpan(22);
        span[0] = (byte)'"';
        Utf8Formatter.TryFormat(value, span[1..], out var written);
        span[written + 1] = (byte)'"';
        output.Advance(written + 2);
    }

    private static void WriteBase64(ReadOnlySpan<byte> bytes, IBufferWriter<byte> output)
    {
        var length = Base64.GetMaxEncodedToUtf8Length(bytes.Length);
        var span = output.GetSpan(length + 2);
        span[0] = (byte)'"';
        Base64.EncodeToUtf8(bytes, span[1..], out _, out var written);
        span[written + 1] = (byte)'"';
        output.Advance(written + 2);
    }

    private static void WriteByte(IBufferWriter<byte> output, byte value)
    {
        output.GetSpan(1)[0] = value;
        output.Advance(1);
    }

    /// <summary>One field of a message type as the writer needs it, computed once per type.</summary>
    private sealed class WriterField
    {
        private WriterField(FieldDescriptor descriptor)
        {
            Descriptor = descriptor;
            Accessor = descriptor.Accessor;
            Oneof = descriptor.RealContainingOneof;
            Kind = KindOf(descriptor);
            var key = new ArrayBufferWriter<byte>();
            WriteString(descriptor.Name, key);
            WriteByte(key, (byte)':');
            Key = key.WrittenSpan.ToArray();
            if (Kind == ValueKind.Enum)
            {
                EnumNames = descriptor.EnumType.Values
                    .GroupBy(v => v.Number)
                    .ToDictionary(g => g.Key, g => Encoding.UTF8.GetBytes($"\"{g.First().Name}\""));
            }
        }

        public FieldDescriptor Descriptor { get; }

        public IFieldAccessor Accessor { get; }

        public OneofDescriptor? Oneof { get; }

        public ValueKind Kind { get; }

        /// <summary><c>"name":</c> in UTF-8.</summary>
        public byte[] Key { get; }

        /// <summary>Each number's quoted name (the first name declared for it, as Go's String() gives).</summary>
        public Dictionary<int, byte[]>? EnumNames { get; }

        public static WriterField[] Plan(MessageDescriptor message) =>
            message.Fields.InDeclarationOrder().Select(f => new WriterField(f)).ToArray();
    }

    internal static ValueKind KindOf(FieldDescriptor field)
    {
        if (field.IsMap)
        {
            // No etcd message has a map; their JSON form (string keys) is not needed.
            throw new NotSupportedException($"map field {field.FullName} has no gateway JSON form");
        }

        return field.FieldType switch
        {
            FieldType.Message => ValueKind.Message,
            FieldType.Bool => ValueKind.Bool,
            FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => ValueKind.Int32,
            FieldType.UInt32 or FieldType.Fixed32 => ValueKind.UInt32,
            FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => ValueKind.Int64,
            FieldType.UInt64 or FieldType.Fixed64 => ValueKind.UInt64,
            FieldType.Enum => ValueKind.Enum,
            FieldType.String => ValueKind.String,
            FieldType.Bytes => ValueKind.Bytes,
            // etcd's protos have no floating-point or group fields.
            _ => throw new NotSupportedException($"field {field.FullName} of type {field.FieldType} has no gateway JSON form"),
        };
    }
}

/// <summary>How a field's values are written and read in jsonpb.</summary>
internal enum ValueKind
{
    Message,
    Bool,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Enum,
    String,
    Bytes,
}
