// The load benchmark reads /proc, drives Linux etcd binaries and SoftHSM2: it is Linux-only by design.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
