namespace EtcdShield.Migration;

/// <summary>
/// Progress on stderr: a bar redrawn in place on a terminal, and a line per tenth of the way otherwise,
/// so logs of unattended runs stay readable.
/// </summary>
internal sealed class ProgressBar
{
    private const int Width = 30;
    private readonly TextWriter _output;
    private readonly bool _interactive;
    private long _lastTenth = -1;

    public ProgressBar(TextWriter output)
    {
        _output = output;
        _interactive = !Console.IsErrorRedirected;
    }

    public void Report(long done, long total)
    {
        var fraction = total == 0 ? 1.0 : Math.Min(1.0, (double)done / total);
        if (_interactive)
        {
            var filled = (int)(fraction * Width);
            _output.Write($"\r[{new string('#', filled)}{new string(' ', Width - filled)}] {done}/{total} keys");
            if (done >= total)
            {
                _output.WriteLine();
            }

            return;
        }

        var tenth = (long)(fraction * 10);
        if (tenth != _lastTenth)
        {
            _lastTenth = tenth;
            _output.WriteLine($"migrate: {done}/{total} keys ({tenth * 10}%)");
        }
    }
}
