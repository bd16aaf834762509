using EtcdShield.Configuration;
using EtcdShield.Encryption;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>Where the KEK lives (the --pkcs11-* flags), plus internal tunables with production defaults.</summary>
internal sealed record Pkcs11Settings
{
    public required string ModulePath { get; init; }

    /// <summary>Preferred over <see cref="Slot"/>: slot ids may change when tokens are added or the module restarts.</summary>
    public string? TokenLabel { get; init; }

    public ulong? Slot { get; init; }

    public required string PinFile { get; init; }

    /// <summary>The KEK family: version 1 is labelled exactly this, later versions "label#N".</summary>
    public required string KeyLabel { get; init; }

    /// <summary>Labels outside the family the operator still trusts to unwrap (--pkcs11-retired-key-label).</summary>
    public IReadOnlyList<string> RetiredKeyLabels { get; init; } = [];

    /// <summary>Sessions open at once; every KEK call takes one for its duration.</summary>
    public int MaxSessions { get; init; } = 4;

    /// <summary>How long a KEK call may take before the caller is told the HSM is unavailable.</summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How often a running proxy looks for a newer KEK version (after <c>etcdshield keys rotate</c>).</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Whether a key with <paramref name="label"/> may unwrap the data key of a stored value: a version of the family
    /// or a retired label, and nothing else in the token. An envelope names its KEK in bytes anyone with write access
    /// to etcd chooses, so naming any other unwrap-capable key must not make a value genuine.
    /// </summary>
    public bool MayUnwrap(string label) =>
        Pkcs11KeyLabel.TryGetVersion(KeyLabel, label, out _) || RetiredKeyLabels.Contains(label, StringComparer.Ordinal);

    /// <summary>"token \"label\"" or "slot N", for messages.</summary>
    public string TokenDescription => TokenLabel is not null ? $"token \"{TokenLabel}\"" : $"slot {Slot}";

    /// <summary>
    /// The settings of options that name a PKCS#11 module; <see cref="ServeCommandLine.UpstreamAndKeys"/> has made
    /// sure the module comes with its pin file and key label. Retired labels are checked here, where KEK ids are
    /// known: each must fit in an envelope and must not be a version of the family, which unwraps anyway.
    /// </summary>
    public static Pkcs11Settings FromOptions(ShieldOptions options)
    {
        var family = options.Pkcs11KeyLabel!;
        foreach (var retired in options.Pkcs11RetiredKeyLabels)
        {
            if (Pkcs11KeyLabel.ToKekId(retired).Length > ValueEnvelope.MaxKekIdLength)
            {
                throw new ConfigurationException($"--pkcs11-retired-key-label '{retired}' is too long: its KEK id must fit in {ValueEnvelope.MaxKekIdLength} characters");
            }

            if (Pkcs11KeyLabel.TryGetVersion(family, retired, out _))
            {
                throw new ConfigurationException($"--pkcs11-retired-key-label '{retired}' is a version of --pkcs11-key-label {family}, which unwraps anyway; remove it");
            }
        }

        return new Pkcs11Settings
        {
            ModulePath = options.Pkcs11Module!,
            TokenLabel = options.Pkcs11TokenLabel,
            Slot = options.Pkcs11Slot,
            PinFile = options.Pkcs11PinFile!,
            KeyLabel = family,
            RetiredKeyLabels = options.Pkcs11RetiredKeyLabels,
        };
    }
}
