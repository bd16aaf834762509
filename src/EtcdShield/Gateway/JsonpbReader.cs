using System.Buffers;
using System.Buffers.Text;
using System.Collections;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace EtcdShield.Gateway;

/// <summary>
/// Reads a request as etcd's gateway does (grpc-gateway v1, golang/protobuf 1.3 jsonpb, unknown fields allowed):
/// proto and JSON field names; the last of a repeated key wins, and the JSON name wins over the proto name, the
/// losing values never interpreted (as Go's map of raw values does); <c>null</c> leaves a field unset; integers
/// as numbers or as strings holding one; enums by name or number; bytes as padded standard base64. Whatever Go
/// refuses, and two members of one oneof, is InvalidArgument naming the field. Each object is scanned once to
/// find its fields and once more by the field's own reader, so the work is the input times its depth, which
/// <see cref="MaxDepth"/> bounds (and with it the message depth Google.Protobuf will later meet).
/// </summary>
internal static class JsonpbReader
{
    /// <summary>The deepest nesting of objects and arrays accepted (a txn nested in a txn costs three).</summary>
    public const int MaxDepth = 64;

    // How much of a client's token an error message repeats.
    private const int EchoBytes = 32;

    private static readonly JsonReaderOptions Options = new() { MaxDepth = MaxDepth };

    private static readonly ConcurrentDictionary<MessageDescriptor, ReaderPlan> Plans = new();

    public static IMessage Read(MessageDescriptor descriptor, ReadOnlySpan<byte> json)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var message = New(descriptor);
        if (json.IndexOfAnyExcept(" \t\r\n"u8) < 0)
        {
            // An empty body is the empty message, as grpc-gateway makes it when Go's decoder finds no value.
            return message;
        }

        try
        {
            var reader = new Utf8JsonReader(json, Options);
            reader.Read();
            if (reader.TokenType == JsonTokenType.Null)
            {
                // json.Unmarshal of null leaves Go's map of fields empty.
                EnsureEnd(ref reader);
                return message;
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid($"a {descriptor.Name} must be a JSON object, not {Describe(reader.TokenType)}");
            }

            // Validates the whole value (syntax and depth) before any of it is interpreted.
            reader.Skip();
            EnsureEnd(ref reader);
            ReadObject(json[..(int)reader.BytesConsumed], message);
            return message;
        }
        catch (JsonException e)
        {
            throw Invalid($"malformed JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {Reason(e)}");
        }
    }

    private static void EnsureEnd(ref Utf8JsonReader reader)
    {
        if (reader.Read())
        {
            throw Invalid("more than one JSON value");
        }
    }

    // System.Text.Json's reason, without the position suffix it appends.
    private static string Reason(JsonException e)
    {
        var text = e.Message;
        var cut = text.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return cut > 0 ? text[..cut] : text;
    }

    private static IMessage New(MessageDescriptor descriptor) => descriptor.Parser.ParseFrom(ReadOnlySpan<byte>.Empty);

    /// <summary>Fills <paramref name="message"/> from <paramref name="json"/>, exactly one valid JSON object.</summary>
    private static void ReadObject(ReadOnlySpan<byte> json, IMessage message)
    {
        var plan = Plans.GetOrAdd(message.Descriptor, ReaderPlan.For);
        var slots = plan.SlotCount;
        Span<int> starts = slots <= 128 ? stackalloc int[slots] : new int[slots];
        Span<int> lengths = slots <= 128 ? stackalloc int[slots] : new int[slots];
        lengths.Clear();

        // First pass: where the last value of each known name is; unknown names and overridden values are only skipped.
        var reader = new Utf8JsonReader(json, Options);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var slot = plan.Find(ref reader);
            reader.Read();
            var start = (int)reader.TokenStartIndex;
            reader.Skip();
            if (slot >= 0)
            {
                starts[slot] = start;
                lengths[slot] = (int)reader.BytesConsumed - start;
            }
        }

        foreach (var (oneof, slot) in plan.OneofNames)
        {
            // Go would try to store a value under a oneof's own name and fail on anything but null.
            if (lengths[slot] > 0 && !IsNull(json.Slice(starts[slot], lengths[slot])))
            {
                throw Invalid($"{oneof.Name} of {message.Descriptor.Name} names a oneof, not a field");
            }
        }

        Span<int> oneofSet = plan.Oneofs.Length <= 16 ? stackalloc int[plan.Oneofs.Length] : new int[plan.Oneofs.Length];
        oneofSet.Fill(-1);
        for (var i = 0; i < plan.Fields.Length; i++)
        {
            // Go's jsonpb reads the proto name, then the JSON name over it.
            var slot = lengths[(2 * i) + 1] > 0 ? (2 * i) + 1 : 2 * i;
            if (lengths[slot] == 0)
            {
                continue;
            }

            var field = plan.Fields[i];
            var value = json.Slice(starts[slot], lengths[slot]);
            if (field.OneofIndex >= 0)
            {
                // A null message member stays unset (gogo marshals a nil one as nothing); a null scalar is its zero.
                if (field.Kind == ValueKind.Message && IsNull(value))
                {
                    continue;
                }

                ref var other = ref oneofSet[field.OneofIndex];
                if (other >= 0)
                {
                    throw Invalid($"fields {plan.Fields[other].Descriptor.Name} and {field.Descriptor.Name} of oneof {plan.Oneofs[field.OneofIndex].Name} are both set");
                }

                other = i;
            }

            ReadField(field, value, message);
        }
    }

    private static bool IsNull(ReadOnlySpan<byte> value) => value.SequenceEqual("null"u8);

    private static void ReadField(ReaderField field, ReadOnlySpan<byte> json, IMessage message)
    {
        var reader = new Utf8JsonReader(json, Options);
        reader.Read();
        var descriptor = field.Descriptor;
        if (descriptor.IsRepeated)
        {
            if (reader.TokenType == JsonTokenType.Null)
            {
                return;
            }

            if (reader.TokenType != JsonTokenType.StartArray)
            {
                throw Invalid($"repeated field {descriptor.Name} must be a JSON array, not {Describe(reader.TokenType)}");
            }

            var list = (IList)field.Accessor.GetValue(message);
            list.Clear();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (field.Kind == ValueKind.Message)
                {
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        // gogo's marshaler would dereference the nil element: etcd's gateway never sends this on.
                        throw Invalid($"repeated field {descriptor.Name} has a null element");
                    }

                    list.Add(ReadMessage(field, json, ref reader));
                }
                else
                {
                    list.Add(ReadScalar(field, ref reader) ?? field.Zero);
                }
            }

            return;
        }

        if (field.Kind == ValueKind.Message)
        {
            if (reader.TokenType == JsonTokenType.Null)
            {
                return;
            }

            field.Accessor.SetValue(message, ReadMessage(field, json, ref reader));
            return;
        }

        var scalar = ReadScalar(field, ref reader);
        if (scalar is not null || field.OneofIndex >= 0)
        {
            field.Accessor.SetValue(message, scalar ?? field.Zero);
        }
    }

    private static IMessage ReadMessage(ReaderField field, ReadOnlySpan<byte> json, ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Invalid($"message field {field.Descriptor.Name} must be a JSON object, not {Describe(reader.TokenType)}");
        }

        var start = (int)reader.TokenStartIndex;
        reader.Skip();
        var message = New(field.Descriptor.MessageType);
        ReadObject(json[start..(int)reader.BytesConsumed], message);
        return message;
    }

    // The value of the scalar token under the reader, or null for JSON null (which Go leaves as the zero value).
    private static object? ReadScalar(ReaderField field, ref Utf8JsonReader reader)
    {
        var token = reader.TokenType;
        if (token == JsonTokenType.Null)
        {
            return null;
        }

        var name = field.Descriptor.Name;
        switch (field.Kind)
        {
            case ValueKind.Bool:
                return token switch
                {
                    JsonTokenType.True => true,
                    JsonTokenType.False => false,
                    _ => throw Invalid($"bool field {name} must be true or false, not {Describe(token)}"),
                };
            case ValueKind.String:
                if (token != JsonTokenType.String)
                {
                    throw Invalid($"string field {name} must be a JSON string, not {Describe(token)}");
                }

                return ReadString(ref reader);
            case ValueKind.Bytes:
                if (token != JsonTokenType.String)
                {
                    throw Invalid($"bytes field {name} must be a base64 JSON string, not {Describe(token)}");
                }

                return ReadBytes(field, ref reader);
            case ValueKind.Enum:
                return ReadEnum(field, ref reader);
            default:
                return ReadInteger(field, ref reader);
        }
    }

    private static string ReadString(ref Utf8JsonReader reader)
    {
        var raw = reader.ValueSpan;
        if (!reader.ValueIsEscaped && Utf8.IsValid(raw))
        {
            return Encoding.UTF8.GetString(raw);
        }

        var rented = ArrayPool<byte>.Shared.Rent(MaxUnescapedLength(raw));
        try
        {
            return Encoding.UTF8.GetString(rented, 0, Unescape(raw, rented));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented, clearArray: true);
        }
    }

    private static ByteString ReadBytes(ReaderField field, ref Utf8JsonReader reader)
    {
        var raw = reader.ValueSpan;
        if (!reader.ValueIsEscaped)
        {
            // Non-ASCII is not base64 either way, so Go's replacement of invalid UTF-8 need not happen first.
            return DecodeBase64(field, raw);
        }

        var rented = ArrayPool<byte>.Shared.Rent(MaxUnescapedLength(raw));
        try
        {
            return DecodeBase64(field, rented.AsSpan(0, Unescape(raw, rented)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented, clearArray: true);
        }
    }

    // Each raw byte becomes at most one U+FFFD (three bytes); an escape of six bytes at most four.
    internal static int MaxUnescapedLength(ReadOnlySpan<byte> raw) => raw.Length * 3;

    /// <summary>
    /// The UTF-8 of a JSON string's content (between the quotes, already checked as JSON by the reader), unquoted
    /// as Go's encoding/json unquotes it: a surrogate escape not completed by its pair, and every byte that does
    /// not start valid UTF-8, becomes U+FFFD. (System.Text.Json refuses both.)
    /// </summary>
    internal static int Unescape(ReadOnlySpan<byte> raw, Span<byte> output)
    {
        var written = 0;
        var i = 0;
        while (i < raw.Length)
        {
            var b = raw[i];
            if (b == '\\')
            {
                var escape = raw[i + 1];
                if (escape != 'u')
                {
                    output[written++] = escape switch
                    {
                        (byte)'b' => (byte)'\b',
                        (byte)'f' => (byte)'\f',
                        (byte)'n' => (byte)'\n',
                        (byte)'r' => (byte)'\r',
                        (byte)'t' => (byte)'\t',
                        _ => escape,
                    };
                    i += 2;
                    continue;
                }

                var unit = Hex4(raw[(i + 2)..]);
                i += 6;
                var rune = Rune.ReplacementChar;
                if (!char.IsSurrogate((char)unit))
                {
                    rune = new Rune(unit);
                }
                else if (char.IsHighSurrogate((char)unit) && i + 6 <= raw.Length && raw[i] == '\\' && raw[i + 1] == 'u'
                    && Hex4(raw[(i + 2)..]) is var low && char.IsLowSurrogate((char)low))
                {
                    rune = new Rune((char)unit, (char)low);
                    i += 6;
                }

                written += rune.EncodeToUtf8(output[written..]);
                continue;
            }

            if (b < 0x80)
            {
                output[written++] = b;
                i++;
                continue;
            }

            if (Rune.DecodeFromUtf8(raw[i..], out var decoded, out var length) == OperationStatus.Done)
            {
                raw.Slice(i, length).CopyTo(output[written..]);
                written += length;
                i += length;
            }
            else
            {
                // Go's utf8.DecodeRune: one replacement per byte that starts no valid sequence.
                written += Rune.ReplacementChar.EncodeToUtf8(output[written..]);
                i++;
            }
        }

        return written;
    }

    private static int Hex4(ReadOnlySpan<byte> hex)
    {
        var value = 0;
        for (var k = 0; k < 4; k++)
        {
            var c = hex[k];
            value = (value << 4) | c switch
            {
                >= (byte)'0' and <= (byte)'9' => c - '0',
                >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
                _ => c - 'A' + 10,
            };
        }

        return value;
    }

    /// <summary>
    /// Go's base64.StdEncoding.Decode: the standard alphabet, padding required, '\r' and '\n' skipped anywhere,
    /// nothing after the padding; unused low bits of the last quantum are not checked (Go's encoding is not strict).
    /// </summary>
    private static ByteString DecodeBase64(ReaderField field, ReadOnlySpan<byte> text)
    {
        if (text.IsEmpty)
        {
            return ByteString.Empty;
        }

        var output = new byte[(text.Length + 3) / 4 * 3];
        if (text.Length % 4 == 0 && text[..^2].IndexOfAnyExcept(Base64Alphabet) < 0 && text[^2..].IndexOfAnyExcept(Base64Padded) < 0
            && Base64.DecodeFromUtf8(text, output, out var consumed, out var decoded) == OperationStatus.Done && consumed == text.Length)
        {
            // The common case, vectorized: only the alphabet and final padding, which .NET and Go read alike.
            return UnsafeByteOperations.UnsafeWrap(output.AsMemory(0, decoded));
        }


        var written = 0;
        var i = 0;
        Span<byte> quantum = stackalloc byte[4];
        while (true)
        {
            var n = 0;
            while (n < 4)
            {
                i = SkipNewlines(text, i);
                if (i == text.Length)
                {
                    if (n == 0)
                    {
                        return UnsafeByteOperations.UnsafeWrap(output.AsMemory(0, written));
                    }

                    throw BadBase64(field, i);
                }

                var c = text[i];
                if (c == '=')
                {
                    if (n < 2)
                    {
                        throw BadBase64(field, i);
                    }

                    i++;
                    if (n == 2)
                    {
                        i = SkipNewlines(text, i);
                        if (i == text.Length || text[i] != '=')
                        {
                            throw BadBase64(field, i);
                        }

                        i++;
                    }

                    if (SkipNewlines(text, i) != text.Length)
                    {
                        throw BadBase64(field, i);
                    }

                    output[written++] = (byte)((quantum[0] << 2) | (quantum[1] >> 4));
                    if (n == 3)
                    {
                        output[written++] = (byte)((quantum[1] << 4) | (quantum[2] >> 2));
                    }

                    return UnsafeByteOperations.UnsafeWrap(output.AsMemory(0, written));
                }

                var value = Base64Value(c);
                if (value < 0)
                {
                    throw BadBase64(field, i);
                }

                quantum[n++] = (byte)value;
                i++;
            }

            output[written++] = (byte)((quantum[0] << 2) | (quantum[1] >> 4));
            output[written++] = (byte)((quantum[1] << 4) | (quantum[2] >> 2));
            output[written++] = (byte)((quantum[2] << 6) | quantum[3]);
        }
    }

    private static readonly SearchValues<byte> Base64Alphabet =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"u8);

    private static readonly SearchValues<byte> Base64Padded =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="u8);

    private static int SkipNewlines(ReadOnlySpan<byte> text, int i)
    {
        while (i < text.Length && text[i] is (byte)'\r' or (byte)'\n')
        {
            i++;
        }

        return i;
    }

    private static int Base64Value(byte c) => c switch
    {
        >= (byte)'A' and <= (byte)'Z' => c - 'A',
        >= (byte)'a' and <= (byte)'z' => c - 'a' + 26,
        >= (byte)'0' and <= (byte)'9' => c - '0' + 52,
        (byte)'+' => 62,
        (byte)'/' => 63,
        _ => -1,
    };

    // The content of a value may be a secret: the error names the field and the position only.
    private static RpcException BadBase64(ReaderField field, int at) =>
        Invalid($"bytes field {field.Descriptor.Name} is not padded standard base64 (at byte {at} of the decoded string)");

    private static object ReadEnum(ReaderField field, ref Utf8JsonReader reader)
    {
        var descriptor = field.Descriptor;
        if (reader.TokenType == JsonTokenType.String)
        {
            // Go compares the raw text between the quotes, escapes and all, with the names.
            if (reader.ValueSpan.Length <= 64 && field.EnumNumbers!.TryGetValue(Encoding.UTF8.GetString(reader.ValueSpan), out var number))
            {
                return number;
            }

            throw Invalid($"unknown value {Echo(reader.ValueSpan)} for enum {descriptor.EnumType.FullName} of field {descriptor.Name}");
        }

        if (reader.TokenType != JsonTokenType.Number)
        {
            throw Invalid($"enum field {descriptor.Name} must be a name or a number, not {Describe(reader.TokenType)}");
        }

        if (!TryParseInteger(reader.ValueSpan, signed: true, out var value, out _) || value is < int.MinValue or > int.MaxValue)
        {
            throw Invalid($"invalid value for enum field {descriptor.Name}: {Echo(reader.ValueSpan)}");
        }

        return (int)value;
    }

    private static object ReadInteger(ReaderField field, ref Utf8JsonReader reader)
    {
        var descriptor = field.Descriptor;
        var typeName = field.Kind switch
        {
            ValueKind.Int32 => "int32",
            ValueKind.UInt32 => "uint32",
            ValueKind.Int64 => "int64",
            _ => "uint64",
        };
        ReadOnlySpan<byte> text;
        if (reader.TokenType == JsonTokenType.Number)
        {
            text = reader.ValueSpan;
        }
        else if (reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped)
        {
            // Go drops the quotes and decodes what is between them as JSON: spaces around it are fine, and a
            // string holding null is the zero value.
            text = reader.ValueSpan.Trim((byte)' ');
            if (text.SequenceEqual("null"u8))
            {
                return field.Zero;
            }
        }
        else if (reader.TokenType == JsonTokenType.String)
        {
            throw Invalid($"invalid value for {typeName} field {descriptor.Name}: {Echo(reader.ValueSpan)}");
        }
        else
        {
            throw Invalid($"{typeName} field {descriptor.Name} must be a number or a string holding one, not {Describe(reader.TokenType)}");
        }

        var signed = field.Kind is ValueKind.Int32 or ValueKind.Int64;
        if (!TryParseInteger(text, signed, out var number, out var unsigned))
        {
            throw Invalid($"invalid value for {typeName} field {descriptor.Name}: {Echo(text)}");
        }

        switch (field.Kind)
        {
            case ValueKind.Int32 when number is >= int.MinValue and <= int.MaxValue:
                return (int)number;
            case ValueKind.Int64:
                return number;
            case ValueKind.UInt32 when unsigned <= uint.MaxValue:
                return (uint)unsigned;
            case ValueKind.UInt64:
                return unsigned;
            default:
                throw Invalid($"value out of range for {typeName} field {descriptor.Name}: {Echo(text)}");
        }
    }

    /// <summary>
    /// A JSON integer as Go's strconv reads one into an integer: <c>-?(0|[1-9][0-9]*)</c>, no fraction or exponent,
    /// no sign for unsigned types, within 64 bits.
    /// </summary>
    private static bool TryParseInteger(ReadOnlySpan<byte> text, bool signed, out long number, out ulong unsigned)
    {
        number = 0;
        unsigned = 0;
        var digits = text;
        if (!digits.IsEmpty && digits[0] == '-')
        {
            if (!signed)
            {
                return false;
            }

            digits = digits[1..];
        }

        if (digits.IsEmpty || digits.Length > 20 || (digits[0] == '0' && digits.Length > 1))
        {
            return false;
        }

        foreach (var d in digits)
        {
            if (d is < (byte)'0' or > (byte)'9')
            {
                return false;
            }
        }

        return signed
            ? Utf8Parser.TryParse(text, out number, out var used) && used == text.Length
            : Utf8Parser.TryParse(text, out unsigned, out var consumed) && consumed == text.Length;
    }

    // At most a few dozen bytes of the client's token, quoted.
    private static string Echo(ReadOnlySpan<byte> text)
    {
        var shown = Encoding.UTF8.GetString(text.Length <= EchoBytes ? text : text[..EchoBytes]);
        return text.Length > EchoBytes ? $"\"{shown}...\"" : $"\"{shown}\"";
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a bool",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };

    internal static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    /// <summary>A message type's fields as the reader finds them by name, computed once per type.</summary>
    private sealed class ReaderPlan
    {
        private readonly Dictionary<string, int> _slots;
        private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;

        private ReaderPlan(MessageDescriptor descriptor)
        {
            Oneofs = descriptor.Oneofs.Where(o => !o.IsSynthetic).ToArray();
            Fields = descriptor.Fields.InDeclarationOrder()
                .Select(f => new ReaderField(f, f.RealContainingOneof is { } o ? Array.IndexOf(Oneofs, o) : -1))
                .ToArray();
            _slots = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < Fields.Length; i++)
            {
                var field = Fields[i].Descriptor;
                _slots[field.Name] = 2 * i;
                // When both names are the same, the key is the JSON name's (they are one key in Go's map).
                _slots[field.JsonName] = (2 * i) + 1;
            }

            var oneofNames = new List<(OneofDescriptor, int)>();
            foreach (var oneof in Oneofs)
            {
                var slot = (2 * Fields.Length) + oneofNames.Count;
                if (_slots.TryAdd(oneof.Name, slot))
                {
                    oneofNames.Add((oneof, slot));
                }
            }

            OneofNames = oneofNames.ToArray();
            SlotCount = (2 * Fields.Length) + OneofNames.Length;
            _lookup = _slots.GetAlternateLookup<ReadOnlySpan<char>>();
        }

        public ReaderField[] Fields { get; }

        public OneofDescriptor[] Oneofs { get; }

        public (OneofDescriptor Oneof, int Slot)[] OneofNames { get; }

        public int SlotCount { get; }

        public static ReaderPlan For(MessageDescriptor descriptor) => new(descriptor);

        /// <summary>The slot of the property name under the reader, or -1 for a name no field has.</summary>
        public int Find(ref Utf8JsonReader reader)
        {
            // No field name is longer than this; a longer key (even escaped) cannot match one.
            const int Longest = 256;
            if (reader.ValueSpan.Length > Longest)
            {
                return -1;
            }

            Span<byte> unescaped = stackalloc byte[Longest * 3];
            var bytes = reader.ValueIsEscaped ? unescaped[..Unescape(reader.ValueSpan, unescaped)] : reader.ValueSpan;
            Span<char> name = stackalloc char[Longest * 3];
            var length = Encoding.UTF8.GetChars(bytes, name);
            return _lookup.TryGetValue(name[..length], out var slot) ? slot : -1;
        }
    }
}

/// <summary>One field of a message type as the reader needs it.</summary>
internal sealed class ReaderField
{
    public ReaderField(FieldDescriptor descriptor, int oneofIndex)
    {
        Descriptor = descriptor;
        Accessor = descriptor.Accessor;
        OneofIndex = oneofIndex;
        Kind = JsonpbWriter.KindOf(descriptor);
        Zero = Kind switch
        {
            ValueKind.Bool => false,
            ValueKind.Int32 or ValueKind.Enum => 0,
            ValueKind.UInt32 => 0u,
            ValueKind.Int64 => 0L,
            ValueKind.UInt64 => 0UL,
            ValueKind.String => string.Empty,
            ValueKind.Bytes => ByteString.Empty,
            _ => null!,
        };
        if (Kind == ValueKind.Enum)
        {
            EnumNumbers = descriptor.EnumType.Values.ToDictionary(v => v.Name, v => v.Number, StringComparer.Ordinal);
        }
    }

    public FieldDescriptor Descriptor { get; }

    public IFieldAccessor Accessor { get; }

    /// <summary>The index of its real oneof among the message's, or -1.</summary>
    public int OneofIndex { get; }

    public ValueKind Kind { get; }

    /// <summary>The value Go leaves for a JSON null, boxed once.</summary>
    public object Zero { get; }

    public Dictionary<string, int>? EnumNumbers { get; }
}
