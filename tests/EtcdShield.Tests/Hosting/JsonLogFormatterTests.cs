using System.Diagnostics;
using System.Text.Json;
using EtcdShield.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Hosting;

public sealed partial class JsonLogFormatterTests
{
    [Fact]
    public void An_event_is_one_line_with_zaps_keys_its_id_and_its_template_fields()
    {
        var line = Format(logger => Log.Refused(logger, "127.0.0.1:5000", "kube\napiserver", 3, ["/a", "/b"]));

        Assert.EndsWith("\n", line, StringComparison.Ordinal);
        Assert.Single(line.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        Assert.Equal("warn", root.GetProperty("level").GetString());
        Assert.True(DateTimeOffset.TryParse(root.GetProperty("ts").GetString(), out _));
        Assert.Equal("EtcdShield.Test", root.GetProperty("logger").GetString());
        Assert.StartsWith("Refused 127.0.0.1:5000 (kube\napiserver) after 3 tries on ", root.GetProperty("msg").GetString(), StringComparison.Ordinal);
        Assert.Equal(77, root.GetProperty("event_id").GetInt32());
        Assert.Equal("Refused", root.GetProperty("event").GetString());
        Assert.Equal("127.0.0.1:5000", root.GetProperty("Peer").GetString());
        Assert.Equal("kube\napiserver", root.GetProperty("Identity").GetString());
        Assert.Equal(3, root.GetProperty("Tries").GetInt32());
        // The generator hands a list over already rendered, as the message shows it.
        Assert.Equal("[\"/a\",\"/b\"]", root.GetProperty("Paths").GetString());
        Assert.False(root.TryGetProperty("{OriginalFormat}", out _));
    }

    [Fact]
    public void An_exception_is_zaps_error_and_stacktrace_and_a_field_named_like_a_key_keeps_both()
    {
        var line = Format(logger => Log.Failed(logger, "mine", new InvalidOperationException("broken")));

        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        Assert.Equal("error", root.GetProperty("level").GetString());
        Assert.Equal("Failed: mine", root.GetProperty("msg").GetString());
        Assert.Equal("mine", root.GetProperty("msg_").GetString());
        Assert.Equal("InvalidOperationException: broken", root.GetProperty("error").GetString());
        Assert.Contains("System.InvalidOperationException: broken", root.GetProperty("stacktrace").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Inside_an_exported_span_of_the_proxy_the_line_names_its_trace_and_span_and_outside_it_does_not()
    {
        using var source = new ActivitySource("EtcdShield.Test");
        using var other = new ActivitySource("Microsoft.AspNetCore.Test");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s == source || s == other,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);

        string inside, outside;
        string? ids;
        using (var span = source.StartActivity("request"))
        {
            inside = Format(logger => Log.Failed(logger, "x", new InvalidOperationException("broken")));
            ids = $"{span!.TraceId.ToHexString()}/{span.SpanId.ToHexString()}";
        }

        using (other.StartActivity("framework"))
        {
            outside = Format(logger => Log.Failed(logger, "x", new InvalidOperationException("broken")));
        }

        using var insideJson = JsonDocument.Parse(inside);
        using var outsideJson = JsonDocument.Parse(outside);
        Assert.Equal(ids, $"{insideJson.RootElement.GetProperty("trace_id").GetString()}/{insideJson.RootElement.GetProperty("span_id").GetString()}");
        Assert.False(outsideJson.RootElement.TryGetProperty("trace_id", out _));
    }

    private static string Format(Action<ILogger> log)
    {
        var logger = new CapturingLogger();
        log(logger);
        return logger.Line ?? throw new InvalidOperationException("nothing was logged");
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 77, EventName = "Refused", Level = LogLevel.Warning, Message = "Refused {Peer} ({Identity}) after {Tries} tries on {Paths}")]
        public static partial void Refused(ILogger logger, string peer, string identity, int tries, IReadOnlyList<string> paths);

        [LoggerMessage(EventId = 78, EventName = "Failed", Level = LogLevel.Error, Message = "Failed: {msg}")]
        public static partial void Failed(ILogger logger, string msg, Exception exception);
    }

    /// <summary>Hands each entry to the formatter as the console logger does, keeping what it wrote.</summary>
    private sealed class CapturingLogger : ILogger
    {
        private readonly JsonLogFormatter _formatter = new();

        public string? Line { get; private set; }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            using var writer = new StringWriter();
            _formatter.Write(new LogEntry<TState>(logLevel, "EtcdShield.Test", eventId, state, exception, formatter), null, writer);
            Line = writer.ToString();
        }
    }
}
