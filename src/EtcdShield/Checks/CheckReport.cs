namespace EtcdShield.Checks;

/// <summary>
/// Where one check writes its lines. A check that runs past its time is reported as failed and closed: whatever it
/// writes later, from the thread still waiting on a device or a socket, is dropped.
/// </summary>
internal sealed class CheckReport
{
    private readonly List<CheckLine> _lines = [];
    private readonly Lock _gate = new();
    private bool _closed;
    private bool _expired;

    public void Ok(string check, string detail) => Add(new CheckLine(CheckStatus.Ok, check, detail));

    public void Warn(string check, string detail) => Add(new CheckLine(CheckStatus.Warn, check, detail));

    public void Fail(string check, string detail) => Add(new CheckLine(CheckStatus.Fail, check, detail));

    /// <summary>
    /// The check's deadline has passed: what it writes from now on (a call the deadline cut short reporting that it
    /// was cancelled) is dropped, so that the time-out is what the report says.
    /// </summary>
    public void Expire()
    {
        lock (_gate)
        {
            _expired = true;
        }
    }

    /// <summary>The lines written so far, and <paramref name="last"/> if given; nothing is added afterwards.</summary>
    public IReadOnlyList<CheckLine> Close(CheckLine? last = null)
    {
        lock (_gate)
        {
            if (last is not null && !_closed)
            {
                _lines.Add(last);
            }

            _closed = true;
            return [.. _lines];
        }
    }

    private void Add(CheckLine line)
    {
        lock (_gate)
        {
            if (!_closed && !_expired)
            {
                _lines.Add(line);
            }
        }
    }
}
