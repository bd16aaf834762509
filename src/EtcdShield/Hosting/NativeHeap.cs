using System.Runtime.InteropServices;

namespace EtcdShield.Hosting;

/// <summary>
/// glibc gives every thread that meets contention in malloc an arena of its own, up to eight per core, and keeps
/// the pages each one touched. The proxy's native allocations are few (OpenSSL's TLS buffers, the PKCS#11 module,
/// the runtime's own), so two arenas serve them: 7 MiB less at 1,000 watchers, measured in bench/RESULTS.md ("RSS at
/// 1,000 watchers"). The same limit as <c>MALLOC_ARENA_MAX=2</c>; an operator's own setting of that variable wins.
/// </summary>
internal static partial class NativeHeap
{
    // M_ARENA_MAX in glibc's malloc.h.
    private const int ArenaMaxOption = -8;
    private const int Arenas = 2;

    /// <summary>Called first thing in serve, before the host starts the threads that would each take an arena.</summary>
    public static void LimitArenas()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") is not null)
        {
            return;
        }

        try
        {
            _ = SetMallocOption(ArenaMaxOption, Arenas);
        }
        catch (EntryPointNotFoundException)
        {
            // Not glibc (musl has no arenas to limit): nothing to do.
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int SetMallocOption(int option, int value);
}
