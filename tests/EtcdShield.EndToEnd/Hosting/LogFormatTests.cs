using System.Text.Json;
using System.Text.RegularExpressions;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hosting;

/// <summary>
/// The built executable's log: with <c>--log-format json</c> every line it writes, on stdout and stderr, from start
/// to exit, is a JSON object with zap's keys, and a warning carries its template's fields; text stays the default.
/// </summary>
public sealed partial class LogFormatTests(TestPki pki) : IClassFixture<TestPki>
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Json_lines_parse_from_start_to_exit_and_a_warning_carries_its_fields()
    {
        var etcd = await SharedEtcd.GetAsync();
        var key = SharedEtcd.NewPrefix("json-log") + "plain";
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl, "--log-format", "json");
        await shield.NextNotificationAsync(StartTimeout);
        using (var direct = GrpcChannels.ToEtcd(etcd))
        {
            // Planted past the proxy, unencrypted: reading it through the proxy logs the warning PlaintextRefused.
            await new KV.KVClient(direct).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8("not encrypted") });
        }

        using (var channel = shield.Channel())
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () =>
                await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) }));
            Assert.Equal(StatusCode.DataLoss, refused.StatusCode);
        }

        await shield.Process.WaitForStdOutAsync(line => line.Contains("\"PlaintextRefused\"", StringComparison.Ordinal), ExitTimeout);
        await shield.Process.WaitForStdOutAsync(line => line.Contains("\"Listening\"", StringComparison.Ordinal), ExitTimeout);
        await shield.TerminateAsync();
        var exited = await shield.Process.WaitForExitAsync(ExitTimeout);

        var lines = exited.StdOutLines.Concat(Lines(exited.StdErr)).ToList();
        var records = lines.Select(line => Parse(line, exited)).ToList();
        Assert.All(records, record =>
        {
            Assert.Equal(JsonValueKind.Object, record.ValueKind);
            Assert.Contains(record.GetProperty("level").GetString(), (string[])["debug", "info", "warn", "error", "fatal"]);
            Assert.True(DateTimeOffset.TryParse(record.GetProperty("ts").GetString(), out _), record.ToString());
            Assert.False(string.IsNullOrEmpty(record.GetProperty("logger").GetString()), record.ToString());
            Assert.Equal(JsonValueKind.String, record.GetProperty("msg").ValueKind);
        });
        var warning = Assert.Single(records, r => r.TryGetProperty("event", out var e) && e.GetString() == "PlaintextRefused");
        Assert.Equal("warn", warning.GetProperty("level").GetString());
        // As the text line prints a key: quoted, non-printable bytes escaped (hashed with --audit-hash-keys).
        Assert.Equal($"\"{key}\"", warning.GetProperty("EtcdKey").GetString());
        Assert.Contains(key, warning.GetProperty("msg").GetString(), StringComparison.Ordinal);
        Assert.Contains(records, r => r.TryGetProperty("event", out var e) && e.GetString() == "Listening" && r.GetProperty("level").GetString() == "info");
        Assert.Equal(0, exited.ExitCode);
    }

    [Fact]
    public async Task Text_is_the_default()
    {
        var etcd = await SharedEtcd.GetAsync();
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl);
        await shield.NextNotificationAsync(StartTimeout);
        // Logged just after READY=1: a SIGTERM sent before it would stop the proxy before it says it is ready.
        await shield.Process.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), StartTimeout);
        await shield.TerminateAsync();
        var exited = await shield.Process.WaitForExitAsync(ExitTimeout);

        Assert.True(exited.StdOutLines.Any(line => TextLine().IsMatch(line) && line.Contains("EtcdShield ready", StringComparison.Ordinal)), exited.ToString());
        Assert.DoesNotContain(exited.StdOutLines, line => line.StartsWith('{'));
    }

    private static JsonElement Parse(string line, CommandResult output)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new Xunit.Sdk.XunitException($"not a JSON line: {line} ({e.Message})\n{output}");
        }
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info: ")]
    private static partial Regex TextLine();
}
