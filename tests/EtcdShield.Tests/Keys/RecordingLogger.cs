using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace EtcdShield.Tests.Keys;

/// <summary>Keeps every formatted log entry so tests can assert what was, and was not, written.</summary>
internal sealed class RecordingLogger<T> : ILogger<T>
{
    public ConcurrentQueue<(LogLevel Level, EventId EventId, string Message)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        string message = formatter(state, exception);
        if (exception is not null)
        {
            message += " | " + exception;
        }

        Entries.Enqueue((logLevel, eventId, message));
    }

    public string AllText() => string.Join('\n', Entries.Select(e => e.Message));
}
