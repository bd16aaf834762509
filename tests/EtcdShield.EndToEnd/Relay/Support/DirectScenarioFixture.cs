using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// The reference transcript: <see cref="EtcdctlScenario"/> run once against a fresh etcd, directly, for every
/// proxied run of the class to be compared with. The etcd is stopped as soon as the transcript is taken.
/// </summary>
public sealed class DirectScenarioFixture : IAsyncLifetime
{
    private ScenarioRun? direct;

    public TestPki Pki { get; } = new();

    internal ScenarioRun Direct => direct ?? throw new InvalidOperationException("The direct run has not been taken.");

    /// <summary>
    /// How the scenario's etcds serve clients: TLS without client-cert-auth, so no request is authenticated
    /// by its certificate's common name (behind the proxy, etcd would see the proxy's name, not the client's).
    /// etcd 3.4 still requires a certificate, because it has a trusted CA file.
    /// </summary>
    internal EtcdClientTls EtcdTls => EtcdClientTls.From(Pki, clientCertAuth: false);

    public async Task InitializeAsync()
    {
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientTls = EtcdTls });
        var run = new ScenarioRun("etcd", new EtcdctlTarget(etcd.ClientUrl, Pki.CaFile, ShieldServer.DefaultClient(Pki)), NewDirectory());
        await EtcdctlScenario.RunAsync(run);
        direct = run;
    }

    public Task DisposeAsync()
    {
        if (direct is not null)
        {
            Directory.Delete(direct.Directory, recursive: true);
        }

        Pki.Dispose();
        return Task.CompletedTask;
    }

    internal static string NewDirectory() => Directory.CreateTempSubdirectory("etcdshield-scenario-").FullName;
}
