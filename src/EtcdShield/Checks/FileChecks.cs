using EtcdShield.Configuration;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Checks;

/// <summary>
/// Every file the configuration names can be read by this user, the audit log can be written, and the files holding
/// secrets (the PIN, the development key) are not readable by group or others. Run as the user the proxy runs as:
/// that is whose permissions count.
/// </summary>
internal static class FileChecks
{
    public const string Name = "file";

    public static void Run(ShieldOptions options, CheckReport report)
    {
        foreach (var (flag, path) in ReadFiles(options))
        {
            Readable(flag, path, report);
        }

        if (options.Pkcs11PinFile is { } pin)
        {
            Private("--pkcs11-pin-file", pin, "the token's PIN", report);
        }

        if (options.EncryptionKeyFile is { } key)
        {
            Private("--encryption-key-file", key, "the key-encryption key", report);
        }

        if (options.AuditLog is { } audit && audit != "-")
        {
            Writable(audit, report);
        }
    }

    private static IEnumerable<(string Flag, string Path)> ReadFiles(ShieldOptions options)
    {
        (string, string?)[] files =
        [
            ("--cert-file", options.CertFile),
            ("--key-file", options.KeyFile),
            ("--trusted-ca-file", options.TrustedCaFile),
            ("--client-crl-file", options.ClientCrlFile),
            ("--policy-file", options.PolicyFile),
            ("--upstream-cert-file", options.UpstreamCertFile),
            ("--upstream-key-file", options.UpstreamKeyFile),
            ("--upstream-trusted-ca-file", options.UpstreamTrustedCaFile),
            ("--encryption-key-file", options.EncryptionKeyFile),
            .. options.RetiredEncryptionKeyFiles.Select(f => ("--retired-encryption-key-file", (string?)f)),
            // A bare library name is found by the dynamic loader's search path, not here; the pkcs11 check loads it.
            ("--pkcs11-module", options.Pkcs11Module is { } module && module.Contains('/', StringComparison.Ordinal) ? module : null),
            ("--pkcs11-pin-file", options.Pkcs11PinFile),
        ];
        return files.Where(f => !string.IsNullOrEmpty(f.Item2)).Select(f => (f.Item1, f.Item2!));
    }

    private static void Readable(string flag, string path, CheckReport report)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            report.Ok(Name, $"{flag} {path} is readable");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            report.Fail(Name, $"{flag} {path} cannot be read ({Why(e)}); fix the path or give this user read access");
        }
    }

    private static void Private(string flag, string path, string holds, CheckReport report)
    {
        if (Pkcs11Pin.IsReadableByOthers(path))
        {
            report.Warn(Name, $"{flag} {path} holds {holds} and is readable by group or others; chmod 600 it (or 640 for a dedicated group)");
        }
    }

    /// <summary>
    /// The log file is opened for appending when it exists (never created here: a file created by whoever runs the
    /// check could belong to the wrong user), and its directory must let the proxy create it and rotate it.
    /// </summary>
    private static void Writable(string path, CheckReport report)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        try
        {
            if (File.Exists(path))
            {
                using var existing = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1);
            }

            var probe = Path.Combine(directory, $".etcdshield-check-{Guid.NewGuid():N}");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1, FileOptions.DeleteOnClose))
            {
            }

            report.Ok(Name, $"--audit-log {path} can be written and rotated in {directory}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            report.Fail(Name, $"--audit-log {path} cannot be written ({Why(e)}); create {directory} and make it writable by this user");
        }
    }

    private static string Why(Exception e) => e switch
    {
        FileNotFoundException => "no such file",
        DirectoryNotFoundException => "no such directory",
        UnauthorizedAccessException => "permission denied",
        _ => e.Message,
    };
}
