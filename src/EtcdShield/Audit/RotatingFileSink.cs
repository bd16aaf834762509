using System.Globalization;
using EtcdShield.Configuration;

namespace EtcdShield.Audit;

/// <summary>
/// An audit file that is rotated by size: when the next line would take it past the limit, FILE becomes FILE.1,
/// FILE.1 becomes FILE.2 and so on, and the oldest beyond the number of backups is deleted. A rotation or an
/// open that fails leaves no file open: the line is not written (the caller counts it) and the next line tries
/// again, so an audit directory that recovers is written to again without a restart.
/// </summary>
internal sealed class RotatingFileSink : IAuditSink
{
    private readonly string _path;
    private readonly long _maxBytes;
    private readonly int _maxBackups;
    private FileStream? _file;

    public RotatingFileSink(string path, long maxBytes, int maxBackups)
    {
        _path = path;
        _maxBytes = maxBytes;
        _maxBackups = maxBackups;
        try
        {
            _file = Open(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"cannot open --audit-log {path}: {e.Message}", e);
        }
    }

    public void Write(ReadOnlySpan<byte> line)
    {
        var file = _file ??= Open(_path);
        if (file.Length > 0 && file.Length + line.Length > _maxBytes)
        {
            file = Rotate();
        }

        file.Write(line);
    }

    public void Flush() => _file?.Flush(flushToDisk: false);

    public void Dispose() => _file?.Dispose();

    private FileStream Rotate()
    {
        _file?.Dispose();
        _file = null;
        for (var i = _maxBackups; i >= 1; i--)
        {
            var from = i == 1 ? _path : Backup(i - 1);
            if (!File.Exists(from))
            {
                continue;
            }

            if (i == _maxBackups && File.Exists(Backup(i)))
            {
                File.Delete(Backup(i));
            }

            File.Move(from, Backup(i), overwrite: true);
        }

        if (_maxBackups == 0)
        {
            File.Delete(_path);
        }

        return _file = Open(_path);
    }

    private string Backup(int number) => _path + "." + number.ToString(CultureInfo.InvariantCulture);

    private static FileStream Open(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.Read };
        if (!OperatingSystem.IsWindows())
        {
            // Audit records can name keys; other users of the machine have no business reading them.
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FileStream(path, options);
    }
}
