using EtcdShield.Checks;
using EtcdShield.Configuration;

namespace EtcdShield.EndToEnd.Checks;

/// <summary>What one run of <c>etcdshield check</c> printed and returned.</summary>
internal sealed record CheckRun(int ExitCode, IReadOnlyList<string> Lines)
{
    public static async Task<CheckRun> OfAsync(ShieldOptions options)
    {
        using var output = new StringWriter();
        var exit = await ConfigurationCheck.RunAsync(options, output, CancellationToken.None);
        return new CheckRun(exit, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    public IEnumerable<string> Failures => Lines.Where(l => l.StartsWith("FAIL ", StringComparison.Ordinal));

    public override string ToString() => $"exit {ExitCode}\n{string.Join('\n', Lines)}";
}
