namespace EtcdShield.Encryption;

/// <summary>Why a value could not be protected or unprotected; also the <c>reason</c> tag of failure metrics.</summary>
internal enum EnvelopeErrorReason
{
    /// <summary>The bytes claim to be an envelope but are structurally invalid.</summary>
    Malformed,

    /// <summary>The envelope names a format version this build does not understand.</summary>
    UnsupportedVersion,

    /// <summary>The envelope was modified, moved to another etcd key, or sealed under another data key.</summary>
    AuthenticationFailed,

    /// <summary>The envelope names a key-encryption key that is not configured.</summary>
    UnknownKey,

    /// <summary>The key-encryption key provider could not be reached; retrying may succeed.</summary>
    KeyUnavailable,

    /// <summary>A rollback-protected envelope sits at another place in its key's history than it was written for.</summary>
    RolledBack,

    /// <summary>A v1 envelope (bound to its key only) under a rollback-protected prefix, outside any migration window.</summary>
    Unbound,
}
