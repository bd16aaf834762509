using System.Diagnostics;
using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// Spans for the calls to the key-encryption key (an HSM, a KMS plugin, a key file): unwrapping a data key to
/// open values, wrapping a new one to seal them. They are rare (data keys are cached) and slow when they happen,
/// which is what a trace of a slow request should show. They name the KEK, never key material.
/// </summary>
internal static class KeyTraces
{
    public const string SourceName = "EtcdShield.Keys";

    private static readonly ActivitySource Source = new(SourceName);

    /// <summary>An unwrap's span, beneath the request that first needed the key (later requests wait on the same unwrap).</summary>
    public static Activity? StartUnwrap(string kekId) => Start("kek.unwrap", kekId);

    public static Activity? StartWrap(string kekId) => Start("kek.wrap", kekId);

    /// <summary>Ends the span, failed with the reason's name (never the message) when <paramref name="failure"/> is set.</summary>
    public static void End(Activity? span, Exception? failure)
    {
        if (span is null)
        {
            return;
        }

        if (failure is not null && span.IsAllDataRequested)
        {
            span.SetStatus(ActivityStatusCode.Error, failure is EnvelopeException envelope ? envelope.Reason.ToString() : failure.GetType().Name);
        }

        span.Dispose();
    }

    private static Activity? Start(string name, string kekId)
    {
        var span = Source.StartActivity(name, ActivityKind.Internal);
        if (span is { IsAllDataRequested: true })
        {
            span.AddTag("etcdshield.kek_id", kekId);
        }

        return span;
    }
}
