namespace EtcdShield.Authorization;

/// <summary>etcd's own permission model for key ranges.</summary>
[Flags]
internal enum KeyPermission
{
    None = 0,
    Read = 1,
    Write = 2,
    ReadWrite = Read | Write,
}
