using System.Security.Cryptography;

namespace EtcdShield.Reload;

/// <summary>
/// What a set of files holds right now, as one hash of their contents. Contents, not timestamps: Kubernetes
/// replaces mounted secrets by swapping a symlink, which leaves the file's own timestamp meaningless.
/// </summary>
internal static class FileFingerprint
{
    public static string Of(IEnumerable<string> paths)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var path in paths)
        {
            try
            {
                hash.AppendData(File.ReadAllBytes(path));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A file that cannot be read now is a change too: the reload then reports why.
                hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"unreadable:{path}:{e.GetType().Name}"));
            }

            hash.AppendData([0]);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
