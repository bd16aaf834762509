namespace EtcdShield.Configuration;

/// <summary>
/// The forms an etcd member's address may take in <c>--upstream-endpoints</c>: <c>http://HOST:PORT</c> and
/// <c>https://HOST:PORT</c>, and unix sockets so that etcd need not listen on any TCP port at all:
/// <c>unix:///abs/path</c>, or etcd's own <c>unix://NAME:PORT</c> (etcd 3.4 creates the socket file
/// <c>NAME:PORT</c> in its working directory; the proxy looks for it in its own), with <c>unixs://</c> for TLS
/// over the socket.
/// </summary>
internal static class UpstreamUrls
{
    public const string Unix = "unix";
    public const string UnixTls = "unixs";

    public const string Example = "http://127.0.0.1:2379, https://10.0.0.1:2379, unix:///run/etcd/client.sock or unixs://localhost:2379";

    /// <exception cref="ConfigurationException">Not one of the accepted forms; the message names the flag and the forms.</exception>
    public static Uri Parse(string flag, string text)
    {
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri))
        {
            var valid = uri.Scheme switch
            {
                "http" or "https" => uri.Host.Length > 0 && uri.AbsolutePath == "/" && uri.Query.Length == 0,
                Unix or UnixTls => SocketPath(uri) is not null,
                _ => false,
            };
            if (valid)
            {
                return uri;
            }
        }

        throw new ConfigurationException($"--{flag} '{text}' is not an etcd endpoint like {Example}");
    }

    /// <summary>https and unixs: etcd's certificate is checked and the proxy's client certificate offered.</summary>
    public static bool UsesTls(Uri endpoint) => endpoint.Scheme is "https" or UnixTls;

    public static bool IsUnixSocket(Uri endpoint) => endpoint.Scheme is Unix or UnixTls;

    /// <summary>
    /// The socket file of a unix endpoint, exactly as written (a <see cref="Uri"/> lower-cases host names, file names
    /// keep their case): the absolute path of <c>unix:///abs/path</c>, or the file <c>NAME:PORT</c> of etcd's form,
    /// relative to the current directory. Null for TCP endpoints and for anything else after the scheme.
    /// </summary>
    public static string? SocketPath(Uri endpoint)
    {
        if (!IsUnixSocket(endpoint))
        {
            return null;
        }

        var rest = endpoint.OriginalString[(endpoint.Scheme.Length + "://".Length)..];
        if (rest.Length > 1 && rest[0] == '/' && rest.IndexOfAny(['?', '#']) < 0)
        {
            return Uri.UnescapeDataString(rest);
        }

        // etcd's form: exactly NAME:PORT, no path; etcd refuses anything else for a unix listener.
        var colon = rest.LastIndexOf(':');
        var valid = colon > 0 && colon < rest.Length - 1
            && rest.AsSpan(colon + 1).IndexOfAnyExceptInRange('0', '9') < 0
            && rest.IndexOfAny(['/', '?', '#', '@']) < 0;
        return valid ? rest : null;
    }

    /// <summary>
    /// The name etcd's certificate must carry for a TLS endpoint: the host of https and of etcd's <c>unixs://NAME:PORT</c>
    /// form (as etcd's own client does), <c>localhost</c> for an absolute socket path (the name gRPC gives a unix socket).
    /// </summary>
    public static string TlsHostName(Uri endpoint) =>
        endpoint.Scheme == UnixTls && endpoint.Host.Length == 0 ? "localhost" : endpoint.Host;
}
