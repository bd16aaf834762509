namespace EtcdShield.LoadGen.Targets;

/// <summary>
/// One row of the unary workloads (watch included): a target kind, and for an EtcdShield kind optionally a named
/// variant of it (<c>--shield-variant NAME=FLAGS[;K=V...]</c>, written <c>shield-encrypted+NAME</c> in --targets), so
/// two configurations of the same proxy (say --watch-sharing on and off, or a GC knob) are measured in one run,
/// interleaved, each against the same direct etcd and grpc-proxy rows.
/// </summary>
internal sealed record BenchTarget(TargetKind Kind, string? Variant = null)
{
    public string Id => Variant is null ? Kind.Id() : $"{Kind.Id()}+{Variant}";

    public string Label => Variant is null ? Kind.Label() : $"{Kind.Label()} +{Variant}";

    public bool IsShield => Kind is TargetKind.ShieldPlain or TargetKind.ShieldEncrypted;

    public static BenchTarget Parse(string id)
    {
        var plus = id.IndexOf('+', StringComparison.Ordinal);
        if (plus < 0)
        {
            return new BenchTarget(TargetKinds.Parse(id));
        }

        var target = new BenchTarget(TargetKinds.Parse(id[..plus]), id[(plus + 1)..]);
        return target.IsShield && target.Variant!.Length > 0
            ? target
            : throw new ArgumentException($"'{id}': only shield-plain and shield-encrypted take a +VARIANT (defined with --shield-variant VARIANT=FLAGS)");
    }

    public override string ToString() => Id;
}

/// <summary>
/// A named EtcdShield configuration: extra command-line flags and environment variables added to that row's proxy
/// (after the bench's own flags, --shield-args and the KEK's: the most specific last).
/// </summary>
internal sealed record ShieldVariant(string Name, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment)
{
    /// <summary>How the report describes it: the flags and variables, as given.</summary>
    public string Description => string.Join(' ', [.. Arguments, .. Environment.Select(e => $"{e.Key}={e.Value}")]) is { Length: > 0 } text ? text : "no changes";
}
