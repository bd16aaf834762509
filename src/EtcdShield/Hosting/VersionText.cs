using System.Reflection;
using System.Runtime.InteropServices;

namespace EtcdShield.Hosting;

/// <summary><c>etcdshield --version</c>, in the shape of <c>etcd --version</c>: the version, the commit, the runtime.</summary>
internal static class VersionText
{
    public static string Describe()
    {
        // "1.0.0+<commit>": the SDK appends the source revision to the informational version.
        var informational = typeof(VersionText).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        var plus = informational.IndexOf('+', StringComparison.Ordinal);
        var version = plus < 0 ? informational : informational[..plus];
        var commit = plus < 0 ? "unknown" : informational[(plus + 1)..];
        return $"""
            EtcdShield Version: {version}
            Git SHA: {commit}
            .NET Version: {Environment.Version}
            OS/Arch: {RuntimeInformation.RuntimeIdentifier}

            """;
    }
}
