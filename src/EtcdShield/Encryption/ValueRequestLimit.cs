using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Encryption;

/// <summary>
/// etcd refuses requests above --max-request-bytes. Encryption makes every value longer, so a request that
/// fits as plaintext can overflow once sealed; the proxy says so itself, before anything reaches etcd.
/// </summary>
internal sealed class ValueRequestLimit
{
    private readonly int _maxRequestBytes;

    public ValueRequestLimit(int maxRequestBytes) => _maxRequestBytes = maxRequestBytes;

    /// <summary>
    /// Seals the value of a request that writes one (Put, Campaign, Proclaim) within etcd's limit: the plaintext
    /// request is checked first, as etcd would check it, then <paramref name="seal"/> seals it in place, then the
    /// sealed request is checked before anything is sent.
    /// </summary>
    public async ValueTask SealWithinAsync<T>(T request, Func<T, ValueTask> seal)
        where T : IMessage
    {
        CheckPlaintext(request);
        await seal(request).ConfigureAwait(false);
        CheckSealed(request);
    }

    /// <summary>Checked on the client's request, before encryption: the answer etcd itself would give.</summary>
    public void CheckPlaintext(IMessage request)
    {
        if (request.CalculateSize() > _maxRequestBytes)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "etcdserver: request is too large"));
        }
    }

    /// <summary>Checked on the sealed request, before it is sent.</summary>
    public void CheckSealed(IMessage request)
    {
        var size = request.CalculateSize();
        if (size > _maxRequestBytes)
        {
            throw new RpcException(new Status(
                StatusCode.ResourceExhausted,
                $"etcdshield: request is too large after encryption ({size} bytes, etcd accepts at most {_maxRequestBytes})"));
        }
    }
}
