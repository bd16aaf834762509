using EtcdShield.Configuration;

namespace EtcdShield.Checks;

/// <summary>
/// <c>etcdshield check</c>: validates a configuration without serving, one line per check, exit code 1 on any failure.
/// </summary>
internal static class ConfigurationCheck
{
    // Placeholder while the checks are being written (issue #12); the command line already calls this entry point.
    public static async Task<int> RunAsync(ShieldOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        await output.WriteLineAsync("FAIL check: not implemented yet".AsMemory(), cancellationToken).ConfigureAwait(false);
        return 1;
    }
}
