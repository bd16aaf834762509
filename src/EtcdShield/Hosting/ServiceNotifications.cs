using System.Net.Sockets;
using EtcdShield.Configuration;

namespace EtcdShield.Hosting;

/// <summary>
/// Tells the service manager that started the proxy (<c>NOTIFY_SOCKET</c>) when it is ready and when it stops:
/// READY=1 once the host has started, that is once every listener accepts, and STOPPING=1 as soon as shutdown
/// begins. A notification that cannot be sent is logged once and never stops the proxy: the supervisor's own
/// timeout is what reports a proxy that never said it was ready.
/// </summary>
internal sealed partial class ServiceNotifications : IHostedService
{
    private readonly string _address;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ShieldOptions _options;
    private readonly ILogger _logger;
    private NotifySocket? _socket;
    private int _failed;
    private CancellationTokenRegistration _started;
    private CancellationTokenRegistration _stopping;

    public ServiceNotifications(string address, IHostApplicationLifetime lifetime, ShieldOptions options, ILogger<ServiceNotifications> logger)
    {
        _address = address;
        _lifetime = lifetime;
        _options = options;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            _socket = new NotifySocket(_address);
        }
        catch (ArgumentException e)
        {
            Failed(e);
            return Task.CompletedTask;
        }

        _started = _lifetime.ApplicationStarted.Register(() => Send(NotifySocket.Message(
            ("READY", "1"),
            ("STATUS", $"serving clients on {string.Join(", ", _options.ListenClientUrls)}"),
            ("MAINPID", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)))));
        _stopping = _lifetime.ApplicationStopping.Register(() => Send(NotifySocket.Message(
            ("STOPPING", "1"),
            ("STATUS", "shutting down: streams end, calls in flight finish"))));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _started.Dispose();
        _stopping.Dispose();
        return Task.CompletedTask;
    }

    private void Send(string message)
    {
        try
        {
            _socket!.Send(message);
        }
        catch (SocketException e)
        {
            Failed(e);
        }
    }

    private void Failed(Exception e)
    {
        if (Interlocked.Exchange(ref _failed, 1) == 0)
        {
            Log.NotifyFailed(_logger, _address, e);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.NotifyFailed, EventName = nameof(EventIds.NotifyFailed), Level = LogLevel.Warning,
            Message = "Could not notify the service manager at NOTIFY_SOCKET {Address}; the proxy serves regardless, further failures are not logged")]
        public static partial void NotifyFailed(ILogger logger, string address, Exception exception);
    }
}
