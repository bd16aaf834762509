using EtcdShield.Configuration;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// The two ways the proxy can serve watches, as flags for <see cref="ShieldServer.StartAsync"/>: "relay" (one upstream
/// etcd watch stream per client stream, <c>--watch-sharing=false</c>) and "shared" (client watches of one range share
/// an upstream watch, <c>--watch-sharing=true</c>). Before the proxy knows the flag it only relays, so "relay" then
/// adds no flag and "shared" is not offered: the tests that take <see cref="Modes"/> run in every mode this build has.
/// </summary>
internal static class WatchSharing
{
    public const string Relay = "relay";

    public const string Shared = "shared";

    private const string FlagName = "watch-sharing";

    /// <summary>Whether this build of the proxy has <c>--watch-sharing</c>, read from its own flag table.</summary>
    public static bool FlagKnown { get; } = ServeCommandLine.Flags.Any(f => f.Name == FlagName);

    /// <summary>The modes this build offers, first the relay.</summary>
    public static IReadOnlyList<string> Modes { get; } = FlagKnown ? [Relay, Shared] : [Relay];

    /// <summary>The flags that select <paramref name="mode"/>.</summary>
    public static IReadOnlyList<string> Flags(string mode) => mode switch
    {
        // --flag=value reads the same whether the flag is a switch (etcd's form) or takes a value.
        Relay => FlagKnown ? [$"--{FlagName}=false"] : [],
        Shared when FlagKnown => [$"--{FlagName}=true"],
        Shared => throw new InvalidOperationException("This build of the proxy has no --watch-sharing: it only relays."),
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "relay or shared"),
    };
}
