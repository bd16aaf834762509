using System.Runtime.Versioning;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// The built container image as docs/container.md runs it: its own non-root user, a read-only root filesystem with
/// nothing writable mounted (as a kubelet's readOnlyRootFilesystem gives it), host networking, the certificates,
/// policy and development key mounted read-only; in front of a real etcd on loopback or on a mounted socket, the same
/// smoke test as the executable's, and <c>check</c> answering as the published binary answers.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class ContainerImageTests : IClassFixture<ContainerImageFixture>, IClassFixture<TestPki>, IAsyncLifetime
{
    private const string MountPoint = "/etc/etcdshield";
    private const string Plaintext = "through the container image";

    private readonly ContainerImageFixture image;
    private readonly TestPki pki;
    private readonly string directory = Directory.CreateTempSubdirectory("etcdshield-container-").FullName;
    private readonly List<string> containers = [];

    public ContainerImageTests(ContainerImageFixture image, TestPki pki, ITestOutputHelper output)
    {
        this.image = image;
        this.pki = pki;
        output.WriteLine($"publish and image build took {image.BuildTime.TotalSeconds:0} s");
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var name in containers)
        {
            await image.PodmanAsync("rm", "--force", "--ignore", name);
        }

        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task The_image_runs_as_a_fixed_non_root_user_and_holds_the_program_and_no_shell()
    {
        var user = (await image.PodmanAsync("image", "inspect", "--format", "{{.Config.User}}", image.Image)).EnsureSuccess();
        var root = (await image.PodmanAsync("image", "mount", image.Image)).EnsureSuccess().StdOut.Trim();
        try
        {
            Assert.Equal($"{ContainerImageFixture.UserId}:{ContainerImageFixture.UserId}", user.StdOut.Trim());
            Assert.True(File.Exists(Path.Combine(root, "opt/etcdshield/EtcdShield")), "no /opt/etcdshield/EtcdShield in the image");
            foreach (var shell in new[] { "usr/bin/sh", "usr/bin/dash", "usr/bin/bash", "usr/bin/busybox" })
            {
                Assert.False(File.Exists(Path.Combine(root, shell)), $"the image holds /{shell}");
            }

            // No other program at all: nothing in the image but the proxy could be run in it.
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(root, "usr/bin")));
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(root, "usr/sbin")));

            // Nor one elsewhere: every ELF file that names a program interpreter can be exec'd (podman exec). libc.so.6
            // only prints its version; the runtime's createdump would write the proxy's memory, keys included, to
            // any writable mount.
            var programs = Directory.EnumerateFiles(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint })
                .Where(RequestsInterpreter)
                .Select(f => "/" + Path.GetRelativePath(root, f))
                .Order(StringComparer.Ordinal);
            Assert.Equal(["/opt/etcdshield/EtcdShield", "/usr/lib/x86_64-linux-gnu/libc.so.6"], programs);
        }
        finally
        {
            await image.PodmanAsync("image", "unmount", image.Image);
        }
    }

    [Fact]
    public async Task Run_read_only_as_its_user_it_relays_etcdctl_seals_values_refuses_a_client_outside_the_policy_and_exits_0_on_podman_stop()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        var mounted = await PrepareMountAsync(MountPoint);
        var ports = FreePort.Allocate(2);
        var clientUrl = $"https://127.0.0.1:{ports[0]}";
        var metricsUrl = $"http://127.0.0.1:{ports[1]}";
        var name = NewContainerName();

        // The policy and the key file come from ETCDSHIELD_* variables, the rest from serve's flags: both reach the program.
        string[] flags = [.. ServeFlags(mounted, clientUrl, etcd.ClientUrl)];
        await using var container = image.StartPodman([
            "run", "--rm", "--name", name, .. RunFlags(MountPoint),
            "--env", "ETCDSHIELD_POLICY_FILE=" + mounted.PolicyFile, "--env", "ETCDSHIELD_ENCRYPTION_KEY_FILE=" + mounted.KekFile,
            image.Image, "serve", .. flags[..^4], "--metrics-listen-url", metricsUrl,
        ]);
        await container.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var pid = (await image.PodmanAsync("inspect", "--format", "{{.State.Pid}}", name)).EnsureSuccess().StdOut.Trim();
        var status = await File.ReadAllLinesAsync($"/proc/{pid}/status");

        // The image has no HEALTHCHECK (no shell to run one): the host probes the metrics listener, as docs/container.md says.
        using var http = new HttpClient();
        using var health = await http.GetAsync(new Uri(metricsUrl + "/livez"));

        var etcdctl = new Etcdctl(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki));
        var put = await etcdctl.RunAsync("put", "/container/k", Plaintext);
        var get = await etcdctl.RunAsync("get", "/container/k", "--print-value-only");
        // A certificate of the trusted CA that matches no identity is refused in the TLS handshake (docs/policy.md),
        // which etcdctl 3.4 retries until its command timeout: short, so the refusal is quick.
        var stranger = new Etcdctl(clientUrl, pki.CaFile, pki.IssueClient("container-stranger", "container-stranger")) { CommandTimeout = TimeSpan.FromSeconds(3) };
        var refused = await stranger.RunAsync("put", "/container/stranger", "intruder");
        using var direct = GrpcChannels.ToEtcd(etcd);
        var stored = await StoredAsync(new KV.KVClient(direct), "/container/k");
        var intruded = await StoredAsync(new KV.KVClient(direct), "/container/stranger");

        var stop = await image.PodmanAsync("stop", "--time", "20", name);
        var exited = await container.WaitForExitAsync(TimeSpan.FromSeconds(30));

        // The kernel's view of the proxy process, not the image's metadata: every uid and gid is the image's user.
        Assert.Equal($"Uid:\t{ContainerImageFixture.UserId}\t{ContainerImageFixture.UserId}\t{ContainerImageFixture.UserId}\t{ContainerImageFixture.UserId}", status.Single(line => line.StartsWith("Uid:", StringComparison.Ordinal)));
        Assert.Equal($"Gid:\t{ContainerImageFixture.UserId}\t{ContainerImageFixture.UserId}\t{ContainerImageFixture.UserId}\t{ContainerImageFixture.UserId}", status.Single(line => line.StartsWith("Gid:", StringComparison.Ordinal)));
        Assert.True(health.IsSuccessStatusCode, $"/livez answered {(int)health.StatusCode}");
        Assert.True(put.Succeeded, put.ToString());
        Assert.Equal([Plaintext], get.EnsureSuccess().StdOutLines);
        StoredValue.AssertSealed(stored, Plaintext);
        Assert.False(refused.Succeeded, refused.ToString());
        Assert.Null(intruded);
        Assert.True(stop.Succeeded, stop.ToString());
        Assert.False(exited.TimedOut, exited.ToString());
        Assert.Equal(0, exited.ExitCode);
        Assert.DoesNotContain(" fail: ", exited.StdOut, StringComparison.Ordinal);
    }

    /// <summary>
    /// etcd only on its unix socket (etcd's own <c>unix://NAME:PORT</c>, a file in its working directory), that directory
    /// mounted on the image's working directory: the proxy reaches etcd by the same relative name, and nothing else.
    /// </summary>
    [Fact]
    public async Task Run_against_an_etcd_socket_directory_mounted_into_the_container_it_relays_and_seals()
    {
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientUnixSocket = true });
        var mounted = await PrepareMountAsync(MountPoint);
        var socket = Path.GetFileName(etcd.ClientSocketPath!);

        // The image's user must reach the socket: search on its directory, write on the socket (connect needs it).
        File.SetUnixFileMode(etcd.WorkingDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        File.SetUnixFileMode(etcd.ClientSocketPath!, (UnixFileMode)0b110_110_110);
        var clientUrl = $"https://127.0.0.1:{FreePort.Allocate()}";
        var name = NewContainerName();
        await using var container = image.StartPodman([
            "run", "--rm", "--name", name, .. RunFlags(MountPoint), "--volume", $"{etcd.WorkingDirectory}:/run/etcdshield",
            image.Image, "serve", .. ServeFlags(mounted, clientUrl, "unix://" + socket),
        ]);
        await container.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        var etcdctl = new Etcdctl(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki));
        var put = await etcdctl.RunAsync("put", "/container/socket", Plaintext);
        var get = await etcdctl.RunAsync("get", "/container/socket", "--print-value-only");
        var stored = (await new Etcdctl(etcd.ClientUrl).RunAsync("get", "/container/socket", "-w", "json")).EnsureSuccess();
        var stop = await image.PodmanAsync("stop", "--time", "20", name);
        var exited = await container.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.True(put.Succeeded, put.ToString());
        Assert.Equal([Plaintext], get.EnsureSuccess().StdOutLines);
        using var json = System.Text.Json.JsonDocument.Parse(stored.StdOut);
        StoredValue.AssertSealed(ByteString.FromBase64(json.RootElement.GetProperty("kvs")[0].GetProperty("value").GetString()!), Plaintext);
        Assert.True(stop.Succeeded, stop.ToString());
        Assert.Equal(0, exited.ExitCode);
    }

    /// <remarks>
    /// The directory is mounted at its own path here, so the container and the binary are given the very same
    /// arguments and must print the very same lines.
    /// </remarks>
    [Fact]
    public async Task Check_in_the_container_answers_as_the_published_binary_does_for_a_good_and_a_broken_configuration()
    {
        var etcd = await SharedEtcd.GetAsync();
        var mounted = await PrepareMountAsync(directory);
        var clientUrl = $"https://127.0.0.1:{FreePort.Allocate()}";
        var good = ServeFlags(mounted, clientUrl, etcd.ClientUrl);
        string[] broken = [.. good.Select(flag => flag == mounted.KeyFile ? mounted.KeyFile + ".missing" : flag)];

        foreach (var flags in new[] { good, broken })
        {
            var binary = await ExternalCommand.RunAsync(image.Program, ["check", .. flags]);
            var name = NewContainerName();
            var contained = await image.PodmanAsync(["run", "--rm", "--name", name, .. RunFlags(directory), image.Image, "check", .. flags]);

            Assert.False(binary.TimedOut, binary.ToString());
            Assert.True(binary.ExitCode == contained.ExitCode, $"the binary: {binary}{Environment.NewLine}the container: {contained}");
            Assert.Equal(binary.StdOut, contained.StdOut);
            Assert.Equal(binary.StdErr, contained.StdErr);
        }
    }

    /// <summary>
    /// As docs/container.md says: the host network, the image's own user, a read-only root with no tmpfs added
    /// (a kubelet adds none either), and the configuration directory read-only.
    /// </summary>
    private string[] RunFlags(string mountPoint) =>
    [
        "--network", "host",
        "--read-only", "--read-only-tmpfs=false",
        "--user", $"{ContainerImageFixture.UserId}:{ContainerImageFixture.UserId}",
        "--volume", $"{directory}:{mountPoint}:ro",
    ];

    /// <summary>Every flag the proxy needs; the last two pairs are the policy and the key file.</summary>
    private static string[] ServeFlags(Mounted mounted, string clientUrl, string upstream) =>
    [
        "--listen-client-urls", clientUrl,
        "--cert-file", mounted.CertFile,
        "--key-file", mounted.KeyFile,
        "--trusted-ca-file", mounted.CaFile,
        "--upstream-endpoints", upstream,
        "--policy-file", mounted.PolicyFile,
        "--encryption-key-file", mounted.KekFile,
    ];

    /// <summary>
    /// The files the container reads, copied into the test's directory and given to the image's user (keys 0400),
    /// as an operator prepares them; returns their paths as the container sees them under <paramref name="mountPoint"/>.
    /// </summary>
    private async Task<Mounted> PrepareMountAsync(string mountPoint)
    {
        File.Copy(pki.ServerCert.CertFile, Path.Combine(directory, "server.crt"), overwrite: true);
        File.Copy(pki.ServerCert.KeyFile, Path.Combine(directory, "server.key"), overwrite: true);
        File.Copy(pki.CaFile, Path.Combine(directory, "ca.crt"), overwrite: true);
        File.Move(ShieldServer.WriteDevelopmentKey(directory), Path.Combine(directory, "kek.b64"), overwrite: true);
        await File.WriteAllTextAsync(Path.Combine(directory, "policy.yaml"), $$"""
            identities:
              - name: smoke
                match: { cn: {{ShieldServer.ClientName}} }
                keys: [{ prefix: /container/, permission: readwrite }]
            """);
        foreach (var file in new[] { "server.key", "kek.b64" })
        {
            File.SetUnixFileMode(Path.Combine(directory, file), UnixFileMode.UserRead);
        }

        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        (await ExternalCommand.RunAsync("/bin/chown", ["-R", $"{ContainerImageFixture.UserId}:{ContainerImageFixture.UserId}", directory])).EnsureSuccess();
        return new Mounted(
            Path.Combine(mountPoint, "server.crt"),
            Path.Combine(mountPoint, "server.key"),
            Path.Combine(mountPoint, "ca.crt"),
            Path.Combine(mountPoint, "policy.yaml"),
            Path.Combine(mountPoint, "kek.b64"));
    }

    /// <summary>A 64-bit little-endian ELF file with a PT_INTERP program header: what the kernel runs as a program.</summary>
    private static bool RequestsInterpreter(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> header = stackalloc byte[64];
        if (file.Read(header) < 64 || !header[..4].SequenceEqual("\u007fELF"u8) || header[4] != 2)
        {
            return false;
        }

        var offset = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(header[0x20..]);
        var size = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(header[0x36..]);
        var count = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(header[0x38..]);
        Span<byte> type = stackalloc byte[4];
        for (var i = 0; i < count; i++)
        {
            file.Position = offset + (i * size);
            if (file.Read(type) == 4 && System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(type) == 3)
            {
                return true;
            }
        }

        return false;
    }

    private static async Task<ByteString?> StoredAsync(KV.KVClient etcd, string key)
    {
        var range = await etcd.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) });
        return range.Kvs.Count == 0 ? null : range.Kvs[0].Value;
    }

    private string NewContainerName()
    {
        var name = "etcdshield-test-" + Guid.NewGuid().ToString("N")[..12];
        containers.Add(name);
        return name;
    }

    private sealed record Mounted(string CertFile, string KeyFile, string CaFile, string PolicyFile, string KekFile);
}
