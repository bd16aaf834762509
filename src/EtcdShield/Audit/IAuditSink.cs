namespace EtcdShield.Audit;

/// <summary>Where audit lines go. Used by one writer at a time.</summary>
internal interface IAuditSink : IDisposable
{
    void Write(ReadOnlySpan<byte> line);

    void Flush();
}
