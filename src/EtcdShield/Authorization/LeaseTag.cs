using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace EtcdShield.Authorization;

/// <summary>
/// Which identity owns a lease, written into the lease ID itself so that every sidecar of a cluster agrees with
/// nothing shared but the policy and etcd: bit 63 is zero (etcd's IDs are positive), the next <see cref="Bits"/>
/// are the tag of the owner's policy name (the first bits of its SHA-256), the rest are random. The proxy chooses
/// the ID of every lease granted through it, and a client that chooses its own must choose one with its tag.
/// </summary>
internal static class LeaseTag
{
    /// <summary>Tag width: two names of one policy share a tag with odds of about n²/2²⁴ (a load error).</summary>
    public const int Bits = 23;

    /// <summary>Random bits below the tag: 2⁴⁰ IDs per identity, so a chosen ID is practically never taken.</summary>
    public const int RandomBits = 63 - Bits;

    private const long RandomMask = (1L << RandomBits) - 1;

    public static int Of(string identityName)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(identityName), hash);
        return (int)(BinaryPrimitives.ReadUInt32BigEndian(hash) >> (32 - Bits));
    }

    /// <summary>A fresh lease ID carrying <paramref name="tag"/>; never 0, which etcd reads as "choose one for me".</summary>
    public static long NewId(int tag)
    {
        Span<byte> random = stackalloc byte[sizeof(long)];
        RandomNumberGenerator.Fill(random);
        var low = BinaryPrimitives.ReadInt64LittleEndian(random) & RandomMask;
        return Compose(tag, low == 0 ? 1 : low);
    }

    public static long Compose(int tag, long low) => ((long)tag << RandomBits) | (low & RandomMask);

    /// <summary>Whether <paramref name="id"/> carries <paramref name="tag"/>; a negative ID carries none.</summary>
    public static bool Carries(long id, int tag) => id > 0 && (id >> RandomBits) == tag;
}
