namespace EtcdShield.LoadGen.Load;

/// <summary>
/// What a run measures. Unary is the closed-loop workloads (and watch) on a fresh etcd per target; the streaming
/// scenarios measure what those cannot: one long server stream of bulk bytes (Snapshot) and many small messages on
/// long-lived duplex streams (LeaseKeepAlive). Gateway is put and range as JSON over HTTP/1.1, etcd's HTTP/JSON
/// gateway as curl and etcd3gw use it.
/// </summary>
internal enum Scenario
{
    Unary,
    Snapshot,
    KeepAlive,
    Gateway,
    Startup,
}

internal static class Scenarios
{
    public static string Id(this Scenario scenario) => scenario switch
    {
        Scenario.Unary => "unary",
        Scenario.Snapshot => "snapshot",
        Scenario.KeepAlive => "keepalive",
        Scenario.Gateway => "gateway",
        Scenario.Startup => "startup",
        _ => scenario.ToString(),
    };

    public static Scenario Parse(string id)
    {
        foreach (var scenario in Enum.GetValues<Scenario>())
        {
            if (scenario.Id() == id)
            {
                return scenario;
            }
        }

        throw new ArgumentException($"unknown scenario '{id}'; known: {string.Join(", ", Enum.GetValues<Scenario>().Select(s => s.Id()))}");
    }
}
