using System.Diagnostics;
using System.Text;

namespace EtcdShield.LoadGen.Infrastructure;

/// <summary>
/// One server started for the benchmark (etcd, etcd grpc-proxy or EtcdShield): its output goes to a log file,
/// it counts as started when a given line appears, and disposing it kills it.
/// </summary>
internal sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _readyMarker;
    private readonly Lock _tailGate = new();
    private readonly Queue<string> _tail = new();

    private ServerProcess(string name, Process process, string logFile, string readyMarker)
    {
        Name = name;
        _process = process;
        _readyMarker = readyMarker;
        LogFile = logFile;
        _log = new StreamWriter(logFile, append: true, Encoding.UTF8) { AutoFlush = true };
    }

    public string Name { get; }

    public string LogFile { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Stopwatch timestamp taken right after the exec: where the start-up scenario's clocks start.</summary>
    public long StartedAt { get; private set; }

    /// <summary>Starts <paramref name="fileName"/> and waits for <paramref name="readyMarker"/> in its output.</summary>
    /// <param name="launched">Called right after the exec, before the ready line: the start-up scenario polls from there.</param>
    /// <exception cref="InvalidOperationException">It exited or stayed silent past the timeout; the message has its last lines.</exception>
    public static async Task<ServerProcess> StartAsync(
        string name,
        string fileName,
        IEnumerable<string> arguments,
        string logFile,
        string readyMarker,
        TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null,
        Action<ServerProcess>? launched = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        // etcd reads ETCD_* variables as flags and refuses duplicates; a developer's shell must not change the run.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("ETCD_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(key);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var server = new ServerProcess(name, process, logFile, readyMarker);
        await server._log.WriteLineAsync($"$ {fileName} {string.Join(' ', info.ArgumentList)}").ConfigureAwait(false);
        process.OutputDataReceived += (_, e) => server.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => server.OnLine(e.Data);
        process.Exited += (_, _) => server._ready.TrySetException(
            new InvalidOperationException($"{name} exited before it was ready.{server.Tail()}"));
        process.Start();
        server.StartedAt = Stopwatch.GetTimestamp();
        ChildProcesses.Add(process);
        launched?.Invoke(server);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        try
        {
            await server._ready.Task.WaitAsync(timeout).ConfigureAwait(false);
            return server;
        }
        catch (TimeoutException)
        {
            server.Dispose();
            throw new InvalidOperationException($"{name} was not ready within {timeout.TotalSeconds:0} s.{server.Tail()}");
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        ChildProcesses.Kill(_process);
        _process.Dispose();
        lock (_tailGate)
        {
            _log.Dispose();
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tailGate)
        {
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // Output that arrives while the process is being killed has nowhere to go and needs none.
            }

            _tail.Enqueue(line);
            if (_tail.Count > 20)
            {
                _tail.Dequeue();
            }
        }

        if (line.Contains(_readyMarker, StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
    }

    private string Tail()
    {
        lock (_tailGate)
        {
            return $"{Environment.NewLine}Log: {LogFile}{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", _tail);
        }
    }
}
