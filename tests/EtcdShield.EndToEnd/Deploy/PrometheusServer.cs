using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// A real Prometheus (the binary of Debian's package, from .tools/) on a free loopback port, scraping the given
/// targets every second and loading deploy/monitoring's rules, with its data in a temporary directory.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private readonly string _directory;
    private readonly HttpClient _http;

    private PrometheusServer(string directory, BackgroundProcess process, Uri url)
    {
        _directory = directory;
        Process = process;
        _http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(10) };
    }

    public BackgroundProcess Process { get; }

    /// <param name="targets">Job name and <c>HOST:PORT</c> serving <c>/metrics</c>.</param>
    public static async Task<PrometheusServer> StartAsync(params (string Job, string Target)[] targets)
    {
        var directory = Directory.CreateTempSubdirectory("etcdshield-prometheus-").FullName;
        var config = Path.Combine(directory, "prometheus.yml");
        File.WriteAllText(config, string.Join('\n', [
            "global:",
            "  scrape_interval: 1s",
            "  evaluation_interval: 1s",
            "rule_files:",
            $"  - {JsonSerializer.Serialize(MonitoringFiles.Rules)}",
            "scrape_configs:",
            .. targets.SelectMany(t => new[] { $"  - job_name: {t.Job}", $"    static_configs: [{{ targets: [\"{t.Target}\"] }}]" }),
            "",
        ]));
        var port = FreePort.Allocate();
        var process = BackgroundProcess.Start(MonitoringFiles.Prometheus, [
            "--config.file", config,
            "--storage.tsdb.path", Path.Combine(directory, "data"),
            "--web.listen-address", $"127.0.0.1:{port}",
            "--log.level", "warn",
        ]);
        var server = new PrometheusServer(directory, process, new Uri($"http://127.0.0.1:{port}/"));
        try
        {
            await Eventually.HoldsAsync(server.ReadyAsync, ready => ready || process.HasExited, StartTimeout);
            if (process.HasExited)
            {
                throw new InvalidOperationException($"Prometheus exited at start: {process}");
            }

            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Every metric name among the series scraped so far.</summary>
    public async Task<IReadOnlySet<string>> MetricNamesAsync()
    {
        using var answer = await GetAsync("api/v1/label/__name__/values");
        return answer.RootElement.GetProperty("data").EnumerateArray().Select(n => n.GetString()!).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The value of an instant query's one sample, or null when it has none.</summary>
    public async Task<double?> ScalarAsync(string expression)
    {
        var (status, error, result) = await QueryAsync(expression);
        if (status != "success")
        {
            throw new InvalidOperationException($"{expression}: {error}");
        }

        return result.GetArrayLength() == 0
            ? null
            : double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
    }

    /// <summary>An instant query now: Prometheus's status ("success" or "error"), its error text, and the result.</summary>
    public async Task<(string Status, string? Error, JsonElement Result)> QueryAsync(string expression)
    {
        using var response = await _http.GetAsync(new Uri("api/v1/query?query=" + Uri.EscapeDataString(expression), UriKind.Relative));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        var status = body.GetProperty("status").GetString()!;
        return status == "success"
            ? (status, null, body.GetProperty("data").GetProperty("result").Clone())
            : (status, body.GetProperty("errorType").GetString() + ": " + body.GetProperty("error").GetString(), default);
    }

    /// <summary>Each loaded rule's name, health ("ok", "err", "unknown" before its first evaluation) and last error.</summary>
    public async Task<IReadOnlyList<(string Name, string Health, string? Error)>> RulesAsync()
    {
        using var answer = await GetAsync("api/v1/rules");
        return answer.RootElement.GetProperty("data").GetProperty("groups").EnumerateArray()
            .SelectMany(g => g.GetProperty("rules").EnumerateArray())
            .Select(r => (r.GetProperty("name").GetString()!, r.GetProperty("health").GetString()!, r.TryGetProperty("lastError", out var e) ? e.GetString() : null))
            .ToList();
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await Process.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task<bool> ReadyAsync()
    {
        try
        {
            using var response = await _http.GetAsync(new Uri("-/ready", UriKind.Relative));
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private async Task<JsonDocument> GetAsync(string path)
    {
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative));
        response.EnsureSuccessStatusCode();
        return await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync());
    }
}
