namespace EtcdShield.Audit;

/// <summary><c>--audit-log -</c>: lines on standard output, for a container's log collector.</summary>
internal sealed class StandardOutputSink : IAuditSink
{
    private readonly Stream _stdout = Console.OpenStandardOutput();

    public void Write(ReadOnlySpan<byte> line) => _stdout.Write(line);

    public void Flush() => _stdout.Flush();

    public void Dispose() => _stdout.Dispose();
}
