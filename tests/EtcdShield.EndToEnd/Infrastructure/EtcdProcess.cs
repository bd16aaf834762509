using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>A real etcd server on loopback, with its own temporary data directory.</summary>
internal sealed class EtcdProcess : IAsyncDisposable
{
    public const string ExecutablePath = "/usr/bin/etcd";

    // etcd 3.4's default (capnslog) logger prints the first marker once the server has joined its
    // cluster and serves clients; with --logger=zap 3.4 prints only the second. Either one is accepted
    // so that a logger flag in ExtraArguments does not break readiness.
    private static readonly string[] ReadyMarkers = ["ready to serve client requests", "\"msg\":\"serving client traffic"];

    private const int StartAttempts = 3;

    private readonly CapturedOutput output = new();
    private readonly DirectoryInfo root;
    private readonly List<string> arguments;
    private readonly TimeSpan readyTimeout;
    private Process? process;
    private int launchedAtLine;

    private EtcdProcess(EtcdOptions options, int clientPort, int peerPort)
    {
        Name = options.Name;
        ClientPort = clientPort;
        PeerPort = peerPort;
        readyTimeout = options.ReadyTimeout;
        root = Directory.CreateTempSubdirectory("etcdshield-etcd-");

        // etcd creates the data directory itself, with the 0700 mode it insists on.
        DataDir = Path.Combine(root.FullName, Name + ".etcd");
        var tls = options.ClientTls is not null;
        if (options.ClientUnixSocket)
        {
            // etcd's form NAME:PORT; the port only makes the file name unique, nothing listens on it.
            var socket = string.Create(CultureInfo.InvariantCulture, $"{Name}:{clientPort}");
            ClientSocketPath = Path.Combine(root.FullName, socket);
            ListenClientUrl = (tls ? "unixs://" : "unix://") + socket;
            ClientUrl = (tls ? "unixs://" : "unix://") + ClientSocketPath;
        }
        else
        {
            ClientUrl = string.Create(CultureInfo.InvariantCulture, $"{(tls ? "https" : "http")}://127.0.0.1:{clientPort}");
            ListenClientUrl = ClientUrl;
        }

        PeerUrl = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{peerPort}");
        arguments = BuildArguments(options);
    }

    public string Name { get; }

    /// <summary>
    /// For example <c>http://127.0.0.1:41234</c>, or https when client TLS is on; with a unix socket the absolute form
    /// <c>unix:///tmp/.../etcd0:41234</c> (or unixs), which etcdctl and the proxy accept from any directory.
    /// </summary>
    public string ClientUrl { get; }

    /// <summary>What etcd was told to listen on: <see cref="ClientUrl"/>, or etcd's relative <c>unix://NAME:PORT</c>.</summary>
    public string ListenClientUrl { get; }

    /// <summary>The socket file etcd serves clients on; null on TCP.</summary>
    public string? ClientSocketPath { get; }

    /// <summary>etcd's working directory, where its relative socket file lives.</summary>
    public string WorkingDirectory => root.FullName;

    public int ClientPort { get; }

    public string PeerUrl { get; }

    public int PeerPort { get; }

    public string DataDir { get; }

    /// <summary>Everything etcd wrote (stdout and stderr) across all starts of this member.</summary>
    public string Log => output.Text;

    public bool IsRunning => process is { HasExited: false };

    /// <summary>Starts etcd and returns once it serves clients.</summary>
    public static async Task<EtcdProcess> StartAsync(EtcdOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new EtcdOptions();
        var portsPinned = options.ClientPort is not null || options.PeerPort is not null;
        for (var attempt = 1; ; attempt++)
        {
            var etcd = Launch(options);
            try
            {
                await etcd.WaitUntilReadyAsync(cancellationToken);
                return etcd;
            }
            catch (InvalidOperationException) when (!portsPinned && attempt < StartAttempts && etcd.Log.Contains("address already in use", StringComparison.Ordinal))
            {
                // Another process took a port between FreePort releasing it and etcd binding it.
                await etcd.DisposeAsync();
            }
            catch
            {
                await etcd.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Starts the process without waiting; members of a new cluster only become ready together.</summary>
    internal static EtcdProcess Launch(EtcdOptions options)
    {
        var ports = FreePort.Allocate(2);
        var etcd = new EtcdProcess(options, options.ClientPort ?? ports[0], options.PeerPort ?? ports[1]);
        etcd.StartProcess();
        return etcd;
    }

    /// <summary>
    /// Waits for the ready log line and then for the client port (or socket) to accept a connection.
    /// Fails early if etcd exits, and after the ready timeout, both with the log tail.
    /// </summary>
    public async Task WaitUntilReadyAsync(CancellationToken cancellationToken = default)
    {
        var current = process ?? throw new InvalidOperationException($"etcd {Name} is not running.");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(readyTimeout);
        try
        {
            var ready = output.WaitForLineAsync(
                line => ReadyMarkers.Any(marker => line.Contains(marker, StringComparison.Ordinal)),
                launchedAtLine,
                deadline.Token);
            var exited = current.WaitForExitAsync(deadline.Token);
            if (await Task.WhenAny(ready, exited) == exited)
            {
                await exited; // Surfaces the deadline rather than an exit if that is what completed it.
                throw new InvalidOperationException(
                    $"etcd {Name} exited with code {current.ExitCode} before it was ready.{Describe()}");
            }

            await ready;
            await WaitForClientPortAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"etcd {Name} was not ready within {readyTimeout.TotalSeconds:0} s.{Describe()}");
        }
    }

    /// <summary>Lines logged so far; pass it to <see cref="WaitForLogAsync"/> to look only at what comes next.</summary>
    public int LogLineCount => output.Count;

    /// <summary>Completes with the first log line at index <paramref name="fromLine"/> or later that contains <paramref name="fragment"/>.</summary>
    public async Task<string> WaitForLogAsync(string fragment, TimeSpan timeout, int fromLine = 0, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            return await output.WaitForLineAsync(line => line.Contains(fragment, StringComparison.Ordinal), fromLine, deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"etcd {Name} did not log \"{fragment}\" within {timeout.TotalSeconds:0} s.{Describe()}");
        }
    }

    /// <summary>Kills etcd abruptly (SIGKILL), as a crash would; the data directory is kept.</summary>
    public async Task StopAsync()
    {
        if (process is null)
        {
            return;
        }

        ExternalCommand.KillTree(process);
        await process.WaitForExitAsync();
        process.Dispose();
        process = null;
    }

    /// <summary>Freezes etcd (SIGSTOP), as a stalled disk or a long GC pause would: its connections stay open, nothing is answered.</summary>
    public Task PauseAsync() => SignalAsync("-STOP");

    /// <summary>Lets a paused etcd run on (SIGCONT).</summary>
    public Task ResumeAsync() => SignalAsync("-CONT");

    /// <summary>Restarts a stopped member on the same ports and data directory, and waits until it is ready.</summary>
    /// <remarks>With an existing data directory etcd ignores the initial-cluster flags and rejoins its cluster.</remarks>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"etcd {Name} is still running.");
        }

        await StopAsync();
        // etcd removes its socket file on a clean stop only; after a kill, 3.4 refuses to start with
        // "bind: address already in use" until the stale file is gone, as a service manager must do too.
        if (ClientSocketPath is { } socket)
        {
            File.Delete(socket);
        }

        output.Append($"----- {Name} restarted by the test -----");
        StartProcess();
        await WaitUntilReadyAsync(cancellationToken);
    }

    private async Task SignalAsync(string signal)
    {
        var running = process ?? throw new InvalidOperationException($"etcd {Name} is not running.");
        (await ExternalCommand.RunAsync("/bin/kill", [signal, running.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])).EnsureSuccess();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            root.Delete(recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp directory must not fail the test that used it.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public override string ToString() => $"etcd {Name} at {ClientUrl}";

    private void StartProcess()
    {
        var startInfo = new ProcessStartInfo(ExecutablePath)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = root.FullName,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // etcd reads ETCD_* variables as flags and refuses to start when one duplicates a command-line
        // flag, so a developer's shell settings must not leak into the test server.
        foreach (var name in startInfo.Environment.Keys.Where(k => k.StartsWith("ETCD_", StringComparison.Ordinal)).ToList())
        {
            startInfo.Environment.Remove(name);
        }

        var started = new Process { StartInfo = startInfo };
        started.OutputDataReceived += (_, e) => OnLine(e.Data);
        started.ErrorDataReceived += (_, e) => OnLine(e.Data);
        launchedAtLine = output.Count;
        started.Start();
        started.BeginOutputReadLine();
        started.BeginErrorReadLine();
        process = started;
    }

    private void OnLine(string? line)
    {
        if (line is not null)
        {
            output.Append(line);
        }
    }

    private async Task WaitForClientPortAsync(CancellationToken cancellationToken)
    {
        // No event says "the port accepts"; etcd has bound it long before the ready line, so this
        // normally succeeds at once and the bounded retry only covers a slow scheduler.
        while (true)
        {
            try
            {
                if (ClientSocketPath is { } path)
                {
                    using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
                }
                else
                {
                    using var client = new TcpClient();
                    await client.ConnectAsync(IPAddress.Loopback, ClientPort, cancellationToken);
                }

                return;
            }
            catch (SocketException)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken);
            }
        }
    }

    private List<string> BuildArguments(EtcdOptions options)
    {
        List<string> args =
        [
            "--name", Name,
            "--data-dir", DataDir,
            "--listen-client-urls", ListenClientUrl,
            "--advertise-client-urls", ListenClientUrl,
            "--listen-peer-urls", PeerUrl,
            "--initial-advertise-peer-urls", PeerUrl,
            "--initial-cluster", options.InitialCluster ?? $"{Name}={PeerUrl}",
            "--initial-cluster-state", options.InitialClusterState,
            "--initial-cluster-token", options.InitialClusterToken ?? "etcdshield-" + Guid.NewGuid().ToString("N"),
        ];

        if (options.ClientTls is { } tls)
        {
            args.AddRange(["--cert-file", tls.CertFile, "--key-file", tls.KeyFile, "--trusted-ca-file", tls.TrustedCaFile]);
            if (tls.ClientCertAuth)
            {
                args.Add("--client-cert-auth");
            }
        }

        args.AddRange(options.ExtraArguments);
        return args;
    }

    private string Describe() =>
        $"{Environment.NewLine}Command: {ExecutablePath} {string.Join(' ', arguments)}{Environment.NewLine}Last log lines:{Environment.NewLine}{output.Tail(40)}";
}
