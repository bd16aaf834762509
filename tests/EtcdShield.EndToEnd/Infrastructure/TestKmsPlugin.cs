using System.Collections.Concurrent;
using System.Security.Cryptography;
using EtcdShield.Protocol.KmsV2;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// A real Kubernetes KMS v2 plugin served over gRPC on a unix socket, holding its keys in memory. Its key can be
/// rotated (a new key_id, old keys still decrypt) and it can be made to fail, as a cloud KMS outage would.
/// It insists on getting its annotations back on Decrypt, as real plugins that keep state there do.
/// </summary>
internal sealed class TestKmsPlugin : KeyManagementService.KeyManagementServiceBase, IAsyncDisposable
{
    private const string AnnotationKey = "test.etcdshield.io/version";
    private readonly ConcurrentDictionary<string, byte[]> _keys = new();
    private readonly string _directory;
    private WebApplication? _app;
    private int _version;

    private TestKmsPlugin()
    {
        _directory = Directory.CreateTempSubdirectory("etcdshield-kms-").FullName;
        SocketPath = Path.Combine(_directory, "kms.sock");
        Rotate();
    }

    public string SocketPath { get; }

    public string Endpoint => "unix://" + SocketPath;

    public string CurrentKeyId { get; private set; } = "";

    /// <summary>While true every call fails UNAVAILABLE.</summary>
    public bool Down { get; set; }

    /// <summary>Completes when a Status call waits under <see cref="HoldStatus"/>.</summary>
    public TaskCompletionSource StatusHeld { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int EncryptCalls;

    public int DecryptCalls;

    private TaskCompletionSource? _statusRelease;

    public static async Task<TestKmsPlugin> StartAsync()
    {
        var plugin = new TestKmsPlugin();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(plugin.SocketPath, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(plugin);
        plugin._app = builder.Build();
        plugin._app.MapGrpcService<TestKmsPlugin>();
        await plugin._app.StartAsync();
        return plugin;
    }

    /// <summary>Makes a new key current; earlier keys keep decrypting.</summary>
    public string Rotate()
    {
        CurrentKeyId = $"projects/test/keys/kek/versions/{Interlocked.Increment(ref _version)}";
        _keys[CurrentKeyId] = RandomNumberGenerator.GetBytes(32);
        return CurrentKeyId;
    }

    /// <summary>From now on Status calls wait until <see cref="ReleaseStatus"/>.</summary>
    public void HoldStatus() => _statusRelease = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ReleaseStatus() => _statusRelease?.TrySetResult();

    public override async Task<StatusResponse> Status(StatusRequest request, ServerCallContext context)
    {
        ThrowIfDown();
        if (_statusRelease is { } release)
        {
            StatusHeld.TrySetResult();
            await release.Task;
        }

        return new StatusResponse { Version = "v2", Healthz = "ok", KeyId = CurrentKeyId };
    }

    public override Task<EncryptResponse> Encrypt(EncryptRequest request, ServerCallContext context)
    {
        ThrowIfDown();
        Interlocked.Increment(ref EncryptCalls);
        var keyId = CurrentKeyId;
        using var aes = new AesGcm(_keys[keyId], 16);
        var output = new byte[12 + request.Plaintext.Length + 16];
        RandomNumberGenerator.Fill(output.AsSpan(0, 12));
        aes.Encrypt(output.AsSpan(0, 12), request.Plaintext.Span, output.AsSpan(12, request.Plaintext.Length), output.AsSpan(12 + request.Plaintext.Length), System.Text.Encoding.UTF8.GetBytes(keyId));
        var response = new EncryptResponse { Ciphertext = ByteString.CopyFrom(output), KeyId = keyId };
        response.Annotations[AnnotationKey] = ByteString.CopyFromUtf8("1");
        return Task.FromResult(response);
    }

    public override Task<DecryptResponse> Decrypt(DecryptRequest request, ServerCallContext context)
    {
        ThrowIfDown();
        Interlocked.Increment(ref DecryptCalls);
        if (!request.Annotations.ContainsKey(AnnotationKey) || !_keys.TryGetValue(request.KeyId, out var key))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "unknown key_id or missing annotations"));
        }

        var data = request.Ciphertext.Span;
        var plaintext = new byte[data.Length - 28];
        using var aes = new AesGcm(key, 16);
        try
        {
            aes.Decrypt(data[..12], data[12..^16], data[^16..], plaintext, System.Text.Encoding.UTF8.GetBytes(request.KeyId));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "ciphertext does not authenticate"));
        }

        return Task.FromResult(new DecryptResponse { Plaintext = ByteString.CopyFrom(plaintext) });
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private void ThrowIfDown()
    {
        if (Down)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "test KMS is down"));
        }
    }
}
