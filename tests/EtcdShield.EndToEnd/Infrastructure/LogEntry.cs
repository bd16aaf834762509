using Microsoft.Extensions.Logging;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>One log call captured by <see cref="TestLogSink"/>.</summary>
/// <param name="Properties">The structured state (message template values, plus "{OriginalFormat}").</param>
/// <param name="Scopes">Active scopes, outermost first.</param>
internal sealed record LogEntry(
    DateTimeOffset Timestamp,
    LogLevel Level,
    string Category,
    EventId EventId,
    string Message,
    Exception? Exception,
    IReadOnlyList<KeyValuePair<string, object?>> Properties,
    IReadOnlyList<object?> Scopes)
{
    /// <summary>
    /// Whether this is the event <paramref name="eventName"/> (a [LoggerMessage] method's name) of the logger
    /// <paramref name="category"/>: numeric ids are renumbered and were once shared by two features.
    /// </summary>
    public bool Is(string category, string eventName) => Category == category && EventId.Name == eventName;

    public override string ToString() =>
        $"{Timestamp:HH:mm:ss.fff} {Level} {Category}[{EventId.Id}] {Message}{(Exception is null ? "" : System.Environment.NewLine + Exception)}";
}
