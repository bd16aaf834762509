using System.Buffers;
using System.Collections;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace EtcdShield.Hosting;

/// <summary>
/// <c>--log-format json</c>: one JSON object per line with the keys etcd's zap logs use (<c>level</c>, <c>ts</c>,
/// <c>logger</c> for the category, <c>msg</c>), the event's id and name, and then every field of the message
/// template under its own name, so log pipelines that already parse etcd's logs parse ours. The fields are the
/// values the text message shows (keys already redacted by <c>--audit-hash-keys</c>); nothing else is added.
/// </summary>
internal sealed class JsonLogFormatter : ConsoleFormatter
{
    public const string FormatterName = "etcdshield-json";

    private const string OriginalFormat = "{OriginalFormat}";

    // A template field with one of these names would repeat a key; it is written with a '_' after its name instead.
    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal) { "level", "ts", "logger", "msg", "event_id", "event", "trace_id", "span_id", "error", "stacktrace" };

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        // Not embedded in HTML: keep '<', '&', quotes and non-ASCII text readable; control characters are still escaped.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public JsonLogFormatter()
        : base(FormatterName)
    {
    }

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (message is null && logEntry.Exception is null)
        {
            return;
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("level", Level(logEntry.LogLevel));
            json.WriteString("ts", DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
            json.WriteString("logger", logEntry.Category);
            json.WriteString("msg", message);
            if (logEntry.EventId.Id != 0)
            {
                json.WriteNumber("event_id", logEntry.EventId.Id);
            }

            if (logEntry.EventId.Name is { } name)
            {
                json.WriteString("event", name);
            }

            // The request's span, when it is one of the proxy's and exported (--otlp-endpoint, sampled): the ids lead
            // from the log line to its trace. ASP.NET Core's own per-request activity is never exported, so not named.
            if (Activity.Current is { Recorded: true } span && span.Source.Name.StartsWith("EtcdShield.", StringComparison.Ordinal))
            {
                json.WriteString("trace_id", span.TraceId.ToHexString());
                json.WriteString("span_id", span.SpanId.ToHexString());
            }

            if (logEntry.State is IReadOnlyList<KeyValuePair<string, object?>> fields)
            {
                WriteFields(json, fields);
            }

            if (logEntry.Exception is { } exception)
            {
                // zap's names: "error" for the error's text, "stacktrace" for where it came from.
                json.WriteString("error", $"{exception.GetType().Name}: {exception.Message}");
                json.WriteString("stacktrace", exception.ToString());
            }

            json.WriteEndObject();
        }

        textWriter.Write(Encoding.UTF8.GetString(buffer.WrittenSpan));
        textWriter.Write('\n');
    }

    /// <summary>zap's level names, so "warn" and "info" match what etcd writes beside the proxy.</summary>
    private static string Level(LogLevel level) => level switch
    {
        LogLevel.Trace or LogLevel.Debug => "debug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "error",
        _ => "fatal",
    };

    private static void WriteFields(Utf8JsonWriter json, IReadOnlyList<KeyValuePair<string, object?>> fields)
    {
        for (var i = 0; i < fields.Count; i++)
        {
            var (name, value) = fields[i];
            if (name == OriginalFormat)
            {
                continue;
            }

            json.WritePropertyName(Reserved.Contains(name) ? name + "_" : name);
            WriteValue(json, value);
        }
    }

    private static void WriteValue(Utf8JsonWriter json, object? value)
    {
        switch (value)
        {
            case null:
                json.WriteNullValue();
                break;
            case string text:
                json.WriteStringValue(text);
                break;
            case bool flag:
                json.WriteBooleanValue(flag);
                break;
            case int or long or short or byte or sbyte or ushort or uint:
                json.WriteNumberValue(Convert.ToInt64(value, CultureInfo.InvariantCulture));
                break;
            case ulong number:
                json.WriteNumberValue(number);
                break;
            case double or float or decimal when Convert.ToDouble(value, CultureInfo.InvariantCulture) is var number && double.IsFinite(number):
                json.WriteNumberValue(number);
                break;
            case DateTimeOffset time:
                json.WriteStringValue(time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
                break;
            case DateTime time:
                json.WriteStringValue(time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
                break;
            case IEnumerable items:
                // As the text message shows a list (file paths, URLs): each item's text, as an array.
                json.WriteStartArray();
                foreach (var item in items)
                {
                    json.WriteStringValue(Text(item));
                }

                json.WriteEndArray();
                break;
            default:
                json.WriteStringValue(Text(value));
                break;
        }
    }

    private static string Text(object? value) => value is IFormattable formattable
        ? formattable.ToString(null, CultureInfo.InvariantCulture)
        : value?.ToString() ?? "";
}
