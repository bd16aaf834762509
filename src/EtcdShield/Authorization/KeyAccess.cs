namespace EtcdShield.Authorization;

/// <summary>One range of keys a request touches, how, and by which part of the request (for denials and the audit log).</summary>
internal readonly record struct KeyAccess(KeyRange Range, KeyPermission Permission, string Operation);
