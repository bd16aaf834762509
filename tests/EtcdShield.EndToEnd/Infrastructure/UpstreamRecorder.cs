using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// A plain HTTP/2 hop between the proxy and a real etcd that notes the metadata of every call it passes on, so
/// that a test can see what etcd was sent (etcd 3.4 itself keeps no trace of it). gRPC passes through untouched.
/// </summary>
internal sealed class UpstreamRecorder : IAsyncDisposable
{
    private readonly ConcurrentQueue<(string Path, IHeaderDictionary Headers)> _calls = new();
    private WebApplication? _app;

    private UpstreamRecorder(int port) => Url = $"http://127.0.0.1:{port}";

    /// <summary>For the proxy's --upstream-endpoints.</summary>
    public string Url { get; }

    public static async Task<UpstreamRecorder> StartAsync(string etcdUrl)
    {
        var recorder = new UpstreamRecorder(FreePort.Allocate());
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, new Uri(recorder.Url).Port, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddHttpForwarder();
        recorder._app = builder.Build();
        recorder._app.Use((context, next) =>
        {
            recorder._calls.Enqueue((context.Request.Path.Value ?? "", new HeaderDictionary(context.Request.Headers.ToDictionary())));
            return next(context);
        });
        recorder._app.MapForwarder("/{**path}", etcdUrl, new ForwarderRequestConfig { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact });
        await recorder._app.StartAsync();
        return recorder;
    }

    /// <summary>The <c>traceparent</c> of each call to <paramref name="path"/> (e.g. /etcdserverpb.KV/Put) so far, null where there was none.</summary>
    public IReadOnlyList<string?> TraceParents(string path) =>
        [.. _calls.Where(c => c.Path == path).Select(c => c.Headers.TryGetValue("traceparent", out var v) ? v.ToString() : null)];

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
