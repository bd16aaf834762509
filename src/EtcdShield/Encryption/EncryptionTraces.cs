using System.Diagnostics;

namespace EtcdShield.Encryption;

/// <summary>
/// Spans for the encryption work that a trace should show apart from the request it belongs to: each retry of a
/// txn whose value-compared keys moved (<see cref="GuardedTxn"/>), covering its pause, its reads and its commit.
/// </summary>
internal static class EncryptionTraces
{
    public const string SourceName = "EtcdShield.Encryption";

    private static readonly ActivitySource Source = new(SourceName);

    /// <summary>Retry number <paramref name="attempt"/> (2 for the first retry) of a guarded txn; it is the current span until disposed.</summary>
    public static Activity? StartGuardRetry(int attempt)
    {
        var span = Source.StartActivity("txn.guard_retry", ActivityKind.Internal);
        if (span is { IsAllDataRequested: true })
        {
            span.AddTag("etcdshield.attempt", attempt);
        }

        return span;
    }
}
