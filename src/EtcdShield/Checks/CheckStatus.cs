namespace EtcdShield.Checks;

/// <summary>The verdict of one line of <c>etcdshield check</c>.</summary>
internal enum CheckStatus
{
    Ok,

    /// <summary>Works, but an operator should look: close to expiry, development-only key, permissive file mode.</summary>
    Warn,

    /// <summary>The proxy would refuse to start, or would start and fail its clients; the exit code becomes 1.</summary>
    Fail,
}
