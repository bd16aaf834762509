using System.Net.Sockets;
using EtcdShield.Configuration;
using EtcdShield.Hosting;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;

namespace EtcdShield.Tests.Hosting;

public sealed class ServiceNotificationsTests : IDisposable
{
    private static readonly ShieldOptions Options = new() { ListenClientUrls = [new Uri("https://127.0.0.1:2379")] };

    private readonly string _directory = Directory.CreateTempSubdirectory("etcdshield-notify-").FullName;
    private readonly ApplicationLifetime _lifetime = new(NullLogger<ApplicationLifetime>.Instance);
    private readonly FakeLogger<ServiceNotifications> _logger = new();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Ready_is_sent_once_the_host_has_started_and_stopping_when_it_begins_to_stop()
    {
        var path = Path.Combine(_directory, "notify");
        using var listener = NotifySocketTests.Bind(new UnixDomainSocketEndPoint(path));
        var notifications = new ServiceNotifications(path, _lifetime, Options, _logger);

        await notifications.StartAsync(CancellationToken.None);
        Assert.Equal(0, listener.Available);
        _lifetime.NotifyStarted();
        var ready = NotifySocketTests.Receive(listener);
        _lifetime.StopApplication();
        var stopping = NotifySocketTests.Receive(listener);

        Assert.Equal($"READY=1\nSTATUS=serving clients on https://127.0.0.1:2379/\nMAINPID={Environment.ProcessId}\n", ready);
        Assert.StartsWith("STOPPING=1\n", stopping, StringComparison.Ordinal);
        Assert.Empty(_logger.Collector.GetSnapshot());
    }

    [Fact]
    public async Task A_socket_nobody_listens_on_is_logged_once_and_the_host_goes_on()
    {
        var notifications = new ServiceNotifications(Path.Combine(_directory, "nobody"), _lifetime, Options, _logger);

        await notifications.StartAsync(CancellationToken.None);
        _lifetime.NotifyStarted();
        _lifetime.StopApplication();
        await notifications.StopAsync(CancellationToken.None);

        var logged = Assert.Single(_logger.Collector.GetSnapshot());
        Assert.Equal(nameof(EventIds.NotifyFailed), logged.Id.Name);
        Assert.Equal(LogLevel.Warning, logged.Level);
    }

    [Fact]
    public async Task An_address_that_is_no_socket_name_is_logged_and_nothing_is_sent()
    {
        var notifications = new ServiceNotifications("relative/notify", _lifetime, Options, _logger);

        await notifications.StartAsync(CancellationToken.None);
        _lifetime.NotifyStarted();

        var logged = Assert.Single(_logger.Collector.GetSnapshot());
        Assert.Contains("relative/notify", logged.Message, StringComparison.Ordinal);
    }
}
