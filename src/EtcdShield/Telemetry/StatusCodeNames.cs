using Grpc.Core;

namespace EtcdShield.Telemetry;

/// <summary>gRPC's canonical upper-case code names, cached so metrics do not format enums per request.</summary>
internal static class StatusCodeNames
{
    private static readonly string[] Names = Enumerable.Range(0, 17)
        .Select(i => ((StatusCode)i) switch
        {
            StatusCode.OK => "OK",
            StatusCode.Cancelled => "CANCELLED",
            StatusCode.Unknown => "UNKNOWN",
            StatusCode.InvalidArgument => "INVALID_ARGUMENT",
            StatusCode.DeadlineExceeded => "DEADLINE_EXCEEDED",
            StatusCode.NotFound => "NOT_FOUND",
            StatusCode.AlreadyExists => "ALREADY_EXISTS",
            StatusCode.PermissionDenied => "PERMISSION_DENIED",
            StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
            StatusCode.FailedPrecondition => "FAILED_PRECONDITION",
            StatusCode.Aborted => "ABORTED",
            StatusCode.OutOfRange => "OUT_OF_RANGE",
            StatusCode.Unimplemented => "UNIMPLEMENTED",
            StatusCode.Internal => "INTERNAL",
            StatusCode.Unavailable => "UNAVAILABLE",
            StatusCode.DataLoss => "DATA_LOSS",
            _ => "UNAUTHENTICATED",
        })
        .ToArray();

    public static string Of(StatusCode code) => (int)code is >= 0 and < 17 ? Names[(int)code] : "UNKNOWN";
}
