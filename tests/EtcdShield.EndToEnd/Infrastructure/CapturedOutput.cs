namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// Lines written by a long-running child process, kept in memory so a test can wait for a specific
/// line (an event, not a sleep) and so failures can show what the process said.
/// </summary>
internal sealed class CapturedOutput
{
    private readonly Lock gate = new();
    private readonly List<string> lines = [];
    private readonly List<Waiter> waiters = [];

    /// <summary>Number of lines captured so far; pass it to <see cref="WaitForLineAsync"/> to ignore older lines.</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return lines.Count;
            }
        }
    }

    public string Text
    {
        get
        {
            lock (gate)
            {
                return string.Join(Environment.NewLine, lines);
            }
        }
    }

    public string Tail(int count)
    {
        lock (gate)
        {
            return string.Join(Environment.NewLine, lines.Skip(Math.Max(0, lines.Count - count)));
        }
    }

    public void Append(string line)
    {
        List<Waiter> matched;
        lock (gate)
        {
            lines.Add(line);
            matched = waiters.FindAll(w => w.Predicate(line));
            waiters.RemoveAll(matched.Contains);
        }

        // Completed outside the lock: continuations may run inline and must not re-enter it while held.
        foreach (var waiter in matched)
        {
            waiter.Completion.TrySetResult(line);
        }
    }

    /// <summary>Completes with the first line at index <paramref name="fromLine"/> or later that matches.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> predicate, int fromLine, CancellationToken cancellationToken)
    {
        var waiter = new Waiter(predicate);
        lock (gate)
        {
            for (var i = fromLine; i < lines.Count; i++)
            {
                if (predicate(lines[i]))
                {
                    return lines[i];
                }
            }

            waiters.Add(waiter);
        }

        try
        {
            return await waiter.Completion.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (gate)
            {
                waiters.Remove(waiter);
            }
        }
    }

    // A class, not a record: waiters are removed by identity.
    private sealed class Waiter(Func<string, bool> predicate)
    {
        public Func<string, bool> Predicate { get; } = predicate;

        public TaskCompletionSource<string> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
