using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// Runs a layout's argv here: its etcd is this machine's /usr/bin/etcd, and its /usr/local/bin/etcdshield (and the image's /opt/etcdshield/EtcdShield) the
/// EtcdShield built with these tests (<c>dotnet EtcdShield.dll</c>, as the executable tests run it; the published
/// image has its own tests). A working directory is entered with <c>env --chdir</c>, which then execs the program,
/// so the process id is the program's.
/// </summary>
internal static class LayoutPrograms
{
    /// <summary>The symlink the systemd layout runs; the image runs <see cref="ImageShield"/>, deploy/publish.sh's program.</summary>
    public const string LayoutShield = "/usr/local/bin/etcdshield";

    public const string ImageShield = "/opt/etcdshield/EtcdShield";

    private static readonly string Assembly = Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll");

    public static BackgroundProcess Start(IReadOnlyList<string> argv, IReadOnlyDictionary<string, string?> environment, string? workingDirectory = null)
    {
        var (program, arguments) = Resolve(argv, workingDirectory);
        return BackgroundProcess.Start(program, arguments, environment);
    }

    public static Task<CommandResult> RunAsync(IReadOnlyList<string> argv, IReadOnlyDictionary<string, string?> environment, string? workingDirectory = null)
    {
        var (program, arguments) = Resolve(argv, workingDirectory);
        return ExternalCommand.RunAsync(program, arguments, environment: environment, timeout: TimeSpan.FromSeconds(60));
    }

    private static (string Program, IReadOnlyList<string> Arguments) Resolve(IReadOnlyList<string> argv, string? workingDirectory)
    {
        List<string> command = argv[0] switch
        {
            "etcd" or EtcdProcess.ExecutablePath => [EtcdProcess.ExecutablePath, .. argv.Skip(1)],
            LayoutShield or ImageShield => [DotnetHost(), Assembly, .. argv.Skip(1)],
            _ => throw new InvalidOperationException($"The layout runs {argv[0]}, which these tests do not know how to run here"),
        };
        return workingDirectory is null ? (command[0], command[1..]) : ("/usr/bin/env", ["--chdir=" + workingDirectory, .. command]);
    }

    /// <summary>The dotnet host running these tests (the SDK exports it to test runs), else the one on PATH.</summary>
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "/usr/bin/dotnet";
}
