using System.Diagnostics;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// EtcdShield's container image built from this checkout, once per test class, as an operator builds it:
/// deploy/publish.sh, then deploy/container/build.sh (which makes the mmdebstrap base only when its inputs changed,
/// and reuses podman's layer cache), and podman run through deploy/container/podman.sh (the project's own
/// containers.conf and storage, never the host's).
/// </summary>
/// <remarks>
/// Cost, on this 2-core machine under the other sessions' load (docs/container.md has the table): cold (no base, no
/// layers, a fresh clone's publish) 4-6 min, of which the base is 1-2.5 min and the publish 2-3 min; warm (base
/// cached outside the clone) 1-2 min, most of it the publish. Images stay cached; each test removes its containers.
/// </remarks>
public sealed class ContainerImageFixture : IAsyncLifetime
{
    public const string Tag = "localhost/etcdshield:dev";

    /// <summary>The image's user (Containerfile ARG USER_ID/GROUP_ID): the files it reads must be readable by it.</summary>
    public const int UserId = 65532;

    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(20);

    /// <summary>The checkout the tests run from (holds deploy/container/).</summary>
    public string Repository { get; } = PublishedProgram.Repository;

    /// <summary>The deploy/publish.sh output the image was built from; <c>Published/EtcdShield</c> is the binary.</summary>
    public string Published { get; private set; } = "";

    public string Program => Path.Combine(Published, "EtcdShield");

    /// <summary>
    /// The id of the image this fixture built: the tests use it rather than <see cref="Tag"/>, which another checkout's
    /// build on the same machine may move meanwhile.
    /// </summary>
    public string Image { get; private set; } = "";

    /// <summary>How long publishing and building took, for the test output (no test asserts on it).</summary>
    public TimeSpan BuildTime { get; private set; }

    public async Task InitializeAsync()
    {
        var stopwatch = Stopwatch.StartNew();

        Published = await PublishedProgram.DirectoryAsync();
        var build = (await ExternalCommand.RunAsync(
            "/bin/bash",
            [Path.Combine(Repository, "deploy", "container", "build.sh"), Tag],
            environment: new Dictionary<string, string?> { ["ETCDSHIELD_PUBLISHED"] = Published },
            timeout: BuildTimeout)).EnsureSuccess();
        Image = build.StdOutLines[^1].Trim();
        BuildTime = stopwatch.Elapsed;
    }

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>Runs podman with the project's configuration and storage.</summary>
    internal Task<CommandResult> PodmanAsync(params string[] arguments) =>
        ExternalCommand.RunAsync("/bin/bash", [PodmanScript, .. arguments], timeout: TimeSpan.FromMinutes(1));

    /// <summary>A podman command that runs until the test stops it (an attached <c>podman run</c>).</summary>
    internal Relay.Support.BackgroundProcess StartPodman(params string[] arguments) =>
        Relay.Support.BackgroundProcess.Start("/bin/bash", [PodmanScript, .. arguments]);

    private string PodmanScript => Path.Combine(Repository, "deploy", "container", "podman.sh");
}
