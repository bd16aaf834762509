using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.Protocol.KmsV2;

using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.Keys.KmsV2;

/// <summary>
/// A connection to a Kubernetes KMS v2 plugin on a unix socket: the same plugins that hold an API server's
/// KEK in AWS KMS, Cloud KMS, Key Vault or Vault hold ours. It resolves every "kms:" KEK id, so values wrapped
/// under the plugin's earlier keys keep decrypting after it rotates.
/// </summary>
internal sealed class KmsPlugin : IKeyEncryptionKeyResolver, IDisposable
{
    /// <summary>How long one plugin call may take; a plugin slower than this is treated as down.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How often the plugin's Status is asked for its current key, as Kubernetes API servers do.</summary>
    public static readonly TimeSpan StatusInterval = TimeSpan.FromMinutes(1);

    private readonly GrpcChannel _channel;

    public KmsPlugin(string endpoint)
    {
        if (!endpoint.StartsWith("unix://", StringComparison.Ordinal))
        {
            throw new ConfigurationException($"--kms-plugin-endpoint {endpoint} must be a unix socket URL, e.g. unix:///var/run/kms.sock");
        }

        Endpoint = endpoint;
        var socketPath = endpoint["unix://".Length..];
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        _channel = GrpcChannel.ForAddress("http://kms-plugin", new GrpcChannelOptions
        {
            HttpHandler = handler,
            Credentials = ChannelCredentials.Insecure,
            DisposeHttpClient = true,
        });
        Client = new KeyManagementService.KeyManagementServiceClient(_channel);
    }

    public string Endpoint { get; }

    public KeyManagementService.KeyManagementServiceClient Client { get; }

    public async Task<StatusResponse> StatusAsync(CancellationToken cancellationToken) =>
        await Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + CallTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);

    /// <summary>The KEK for the plugin's key <paramref name="keyId"/>, as it is named in envelopes.</summary>
    public KmsKeyEncryptionKey KeyFor(string keyId) => new(this, keyId);

    /// <summary>A key ring whose current KEK is the plugin's key now, and which finds any earlier key of the plugin.</summary>
    public KeyRing RingFor(string currentKeyId) => new(KeyFor(currentKeyId)) { Resolver = this };

    /// <summary>Asks the plugin which key is current. Failures are <see cref="KeyProviderUnavailableException"/>s.</summary>
    public async Task<KeyRing> LoadKeyRingAsync(CancellationToken cancellationToken)
    {
        StatusResponse status;
        try
        {
            status = await StatusAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            throw new KeyProviderUnavailableException($"KMS plugin {Endpoint} does not answer Status: {e.StatusCode}: {e.Status.Detail}", e);
        }

        if (string.IsNullOrEmpty(status.KeyId) || !string.Equals(status.Healthz, "ok", StringComparison.Ordinal))
        {
            throw new KeyProviderUnavailableException($"KMS plugin {Endpoint} is not ready: healthz '{status.Healthz}', key_id '{status.KeyId}'");
        }

        return RingFor(status.KeyId);
    }

    public bool TryResolve(string kekId, [NotNullWhen(true)] out IKeyEncryptionKey? kek)
    {
        kek = kekId.StartsWith(KmsKeyEncryptionKey.IdPrefix, StringComparison.Ordinal) ? new KmsKeyEncryptionKey(this, kekId) : null;
        return kek is not null;
    }

    public void Dispose() => _channel.Dispose();
}
