namespace EtcdShield.Hosting;

/// <summary>
/// <c>/livez</c> and <c>/readyz</c> on the metrics URL, for kubelet probes and load balancers. <c>/livez</c> is 200
/// <c>ok</c> whenever the process answers: restarting the proxy cures nothing that etcd or the key provider is
/// missing, so liveness asks neither. <c>/readyz</c> is 200 while etcd and the key provider answer, 503 with the
/// reasons while one does not (see <see cref="Readiness"/> for what a probe costs).
/// </summary>
internal sealed class ProbeEndpoints
{
    private readonly Readiness _readiness;

    public ProbeEndpoints(Readiness readiness)
    {
        _readiness = readiness;
    }

    public static Task WriteLivezAsync(HttpContext context)
    {
        var verbose = context.Request.Query.ContainsKey("verbose");
        return WriteAsync(context, StatusCodes.Status200OK, verbose ? "[+]serving ok\nlivez check passed\n" : "ok");
    }

    public async Task WriteReadyzAsync(HttpContext context)
    {
        var report = await _readiness.CheckAsync().WaitAsync(context.RequestAborted).ConfigureAwait(false);
        var verbose = context.Request.Query.ContainsKey("verbose");
        await WriteAsync(context, report.Ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, report.Format("readyz", verbose))
            .ConfigureAwait(false);
    }

    private static Task WriteAsync(HttpContext context, int status, string body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.Headers.XContentTypeOptions = "nosniff";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsync(body, context.RequestAborted);
    }
}
