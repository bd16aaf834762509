using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// An <see cref="ILoggerProvider"/> that keeps every entry in memory, so a test can wait for a log
/// event and assert that nothing unexpected was logged at Error or above. Optionally echoes to the
/// xunit test output, which is the only place a failing test's server logs can be seen.
/// </summary>
internal sealed class TestLogSink(ITestOutputHelper? output = null) : ILoggerProvider, ISupportExternalScope
{
    private readonly Lock gate = new();
    private readonly List<LogEntry> entries = [];
    private readonly List<(Func<LogEntry, bool> Predicate, TaskCompletionSource<LogEntry> Completion)> waiters = [];
    private IExternalScopeProvider scopes = new LoggerExternalScopeProvider();

    public LogLevel MinimumLevel { get; init; } = LogLevel.Trace;

    public IReadOnlyList<LogEntry> Entries
    {
        get
        {
            lock (gate)
            {
                return entries.ToArray();
            }
        }
    }

    public IReadOnlyList<LogEntry> AtOrAbove(LogLevel level) => Entries.Where(e => e.Level >= level).ToArray();

    /// <summary>Fails the test listing every Error/Critical entry that <paramref name="isExpected"/> does not excuse.</summary>
    public void AssertNoErrors(Func<LogEntry, bool>? isExpected = null)
    {
        var unexpected = AtOrAbove(LogLevel.Error).Where(e => isExpected is null || !isExpected(e)).ToArray();
        if (unexpected.Length > 0)
        {
            Assert.Fail($"Unexpected errors were logged:{System.Environment.NewLine}{string.Join(System.Environment.NewLine, unexpected.Select(e => e.ToString()))}");
        }
    }

    /// <summary>Completes with the first entry, already logged or yet to come, that matches.</summary>
    public async Task<LogEntry> WaitForAsync(Func<LogEntry, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var completion = new TaskCompletionSource<LogEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
        var waiter = (predicate, completion);
        lock (gate)
        {
            var existing = entries.Find(e => predicate(e));
            if (existing is not null)
            {
                return existing;
            }

            waiters.Add(waiter);
        }

        try
        {
            return await completion.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"No matching log entry within {timeout.TotalSeconds:0.#} s. Last entries:{System.Environment.NewLine}{string.Join(System.Environment.NewLine, Entries.TakeLast(20))}");
        }
        finally
        {
            lock (gate)
            {
                waiters.Remove(waiter);
            }
        }
    }

    public void Clear()
    {
        lock (gate)
        {
            entries.Clear();
        }
    }

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => scopes = scopeProvider;

    public void Dispose()
    {
    }

    private void Add(LogEntry entry)
    {
        List<TaskCompletionSource<LogEntry>> matched = [];
        lock (gate)
        {
            entries.Add(entry);
            foreach (var (predicate, completion) in waiters)
            {
                if (predicate(entry))
                {
                    matched.Add(completion);
                }
            }
        }

        foreach (var completion in matched)
        {
            completion.TrySetResult(entry);
        }

        if (output is not null)
        {
            try
            {
                output.WriteLine(entry.ToString());
            }
            catch (InvalidOperationException)
            {
                // xunit refuses output once its test has finished; a host still shutting down may log after that.
            }
        }
    }

    private sealed class CapturingLogger(TestLogSink sink, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => sink.scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= sink.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var properties = (state as IReadOnlyList<KeyValuePair<string, object?>>)?.ToArray() ?? [];
            List<object?> activeScopes = [];
            sink.scopes.ForEachScope((scope, list) => list.Add(scope), activeScopes);
            sink.Add(new LogEntry(DateTimeOffset.UtcNow, logLevel, category, eventId, formatter(state, exception), exception, properties, activeScopes));
        }
    }
}
