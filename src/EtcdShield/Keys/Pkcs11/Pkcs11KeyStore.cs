using System.Diagnostics.CodeAnalysis;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using EtcdShield.Encryption;
namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// The KEK family (<see cref="Pkcs11Settings.KeyLabel"/>) in one HSM token: lists its versions, builds the key ring
/// from them, creates new versions, and does the wraps and unwraps of every <see cref="Pkcs11KeyEncryptionKey"/>.
/// As the ring's resolver it hands out a KEK for any version of the family and any retired label, so values wrapped
/// by a version another proxy created a moment ago decrypt at once; an id naming any other key in the token is
/// unknown, whatever that key could unwrap.
/// </summary>
internal sealed partial class Pkcs11KeyStore : IKeyEncryptionKeyResolver, IDisposable
{
    // RFC 5649 output is whole 8-byte blocks, at least two; far more than a data key needs is not from us.
    private const int MaxWrappedBytes = 1024;

    private const string UnwrapMethod = "C_UnwrapKey";

    private readonly Pkcs11Module _module;
    private readonly Pkcs11SessionPool _pool;
    private readonly ILogger _logger;
    private readonly HashSet<string> _warnedLabels = new(StringComparer.Ordinal);
    private readonly HashSet<string> _warnedForeignLabels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Pkcs11KeyEncryptionKey> _versionKeks = new(StringComparer.Ordinal);
    private int _disposed;

    private Pkcs11KeyStore(Pkcs11Module module, Pkcs11Settings settings, bool readWrite, ILogger logger)
    {
        _module = module;
        Settings = settings;
        _logger = logger;
        _pool = new Pkcs11SessionPool(module, settings, readWrite, logger);
    }

    public Pkcs11Settings Settings { get; }

    public string Family => Settings.KeyLabel;

    /// <summary>Loads the module (or shares it) and prepares sessions on the token; nothing is opened yet.</summary>
    /// <param name="readWrite">Read-write sessions, needed only to create keys.</param>
    /// <exception cref="KeyProviderUnavailableException">The label is unusable or the module cannot be loaded.</exception>
    public static Pkcs11KeyStore Open(Pkcs11Settings settings, bool readWrite, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(logger);
        if (Pkcs11KeyLabel.Problem(settings.KeyLabel) is { } problem)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-key-label: {problem}");
        }

        if (Pkcs11Pin.IsReadableByOthers(settings.PinFile))
        {
            Log.PinFileReadableByOthers(logger, settings.PinFile);
        }

        return new Pkcs11KeyStore(Pkcs11Module.Acquire(settings.ModulePath), settings, readWrite, logger);
    }

    /// <summary>The versions of the family present in the token, oldest first.</summary>
    /// <exception cref="KeyProviderUnavailableException">The HSM cannot be used, or two keys share a version's label.</exception>
    public IReadOnlyList<Pkcs11KekVersion> ListVersions() => _pool.Run(session => VersionsIn(session.FindSecretKeys(label: null)));

    /// <summary>
    /// Validates the highest version and builds the ring: it wraps new data keys, every other version unwraps, and
    /// this store resolves any other "pkcs11:" id. Also proves, once, that the token can wrap and unwrap with it.
    /// </summary>
    /// <exception cref="KeyProviderUnavailableException">No usable KEK: the message names the flag to fix.</exception>
    public KeyRing LoadKeyRing()
    {
        List<Pkcs11KeyInfo> keys = _pool.Run(session => session.FindSecretKeys(label: null));
        List<Pkcs11KekVersion> versions = VersionsIn(keys);
        WarnAboutForeignKeys(keys);
        if (versions.Count == 0)
        {
            throw new KeyProviderUnavailableException(
                $"--pkcs11-key-label {Family}: no secret key labelled \"{Family}\" (or \"{Family}#N\") in {_pool.Where}; " +
                $"create one with: etcdshield keys create --pkcs11-module ... --pkcs11-key-label {Family}");
        }

        Pkcs11KekVersion current = versions[^1];
        if (current.Key.Problem() is { } problem)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-key-label {Family}: {problem}");
        }

        foreach (Pkcs11KekVersion version in versions)
        {
            WarnOnce(version.Key);
        }

        return new KeyRing(Kek(current.Label), versions.Take(versions.Count - 1).Select(v => Kek(v.Label))) { Resolver = this };
    }

    public Task<KeyRing> LoadKeyRingAsync(CancellationToken cancellationToken) => OffThreadAsync(LoadKeyRing, cancellationToken);

    /// <summary>Wraps and unwraps a random key with the ring's current KEK, so a token that cannot is refused at startup.</summary>
    public void ProveRoundTrip(KeyRing ring)
    {
        ArgumentNullException.ThrowIfNull(ring);
        string label = ((Pkcs11KeyEncryptionKey)ring.Current).Label;
        byte[] probe = GC.AllocateArray<byte>(Pkcs11KeyInfo.RequiredKeyBytes, pinned: true);
        byte[]? unwrapped = null;
        try
        {
            RandomNumberGenerator.Fill(probe);
            byte[] wrapped = Wrap(label, probe);
            unwrapped = Unwrap(label, ring.Current.Id, wrapped);
            if (!CryptographicOperations.FixedTimeEquals(unwrapped, probe))
            {
                throw new KeyProviderUnavailableException($"--pkcs11-key-label {Family}: key \"{label}\" unwrapped a different key than it wrapped");
            }
        }
        catch (KeyUnwrapException ex)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-key-label {Family}: key \"{label}\" cannot unwrap what it wrapped", ex);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(probe);
            if (unwrapped is not null)
            {
                CryptographicOperations.ZeroMemory(unwrapped);
            }
        }
    }

    /// <summary>Creates version 1 (<paramref name="rotate"/> false) or the version after the highest present.</summary>
    /// <exception cref="Pkcs11KeyFamilyException">The family exists (create) or does not (rotate), or a concurrent rotation won.</exception>
    public Pkcs11KekVersion CreateVersion(bool rotate) => _pool.Run(session =>
    {
        List<Pkcs11KekVersion> versions = VersionsIn(session.FindSecretKeys(label: null));
        if (!rotate && versions.Count > 0)
        {
            throw new Pkcs11KeyFamilyException(
                $"key \"{versions[^1].Label}\" already exists in {_pool.Where}; use 'etcdshield keys rotate' for a new version");
        }

        if (rotate && versions.Count == 0)
        {
            throw new Pkcs11KeyFamilyException(
                $"no key labelled \"{Family}\" in {_pool.Where} to rotate; create it with 'etcdshield keys create'");
        }

        int next = rotate ? versions[^1].Version + 1 : 1;
        string label = Pkcs11KeyLabel.ForVersion(Family, next);
        if (session.FindSecretKeys(label).Count > 0)
        {
            throw new Pkcs11KeyFamilyException($"a key labelled \"{label}\" already exists in {_pool.Where}");
        }

        Pkcs11KeyInfo created = session.GenerateKek(label);

        // PKCS#11 has no create-if-absent: if another rotation made the same label meanwhile, withdraw ours.
        if (session.FindSecretKeys(label).Count > 1)
        {
            session.Destroy(created.Handle);
            throw new Pkcs11KeyFamilyException($"another rotation created \"{label}\" at the same time; run 'etcdshield keys status'");
        }

        Pkcs11KekVersion result = new(next, created);
        Log.KekCreated(_logger, label, result.KekId, _pool.Where);
        return result;
    });

    public bool TryResolve(string kekId, [NotNullWhen(true)] out IKeyEncryptionKey? kek)
    {
        if (Volatile.Read(ref _disposed) == 0 && Pkcs11KeyLabel.TryParseKekId(kekId, out string label) && Settings.MayUnwrap(label))
        {
            kek = new Pkcs11KeyEncryptionKey(this, label);
            return true;
        }

        kek = null;
        return false;
    }

    internal Task<byte[]> WrapAsync(string label, ReadOnlyMemory<byte> dek, CancellationToken cancellationToken) =>
        OffThreadAsync(() => Wrap(label, dek.Span), cancellationToken);

    internal Task<byte[]> UnwrapAsync(string label, string kekId, ReadOnlyMemory<byte> wrapped, CancellationToken cancellationToken)
    {
        if (wrapped.Length < 16 || wrapped.Length % 8 != 0 || wrapped.Length > MaxWrappedBytes)
        {
            return Task.FromException<byte[]>(NotWrappedBy(kekId, null));
        }

        byte[] copy = wrapped.ToArray();
        return OffThreadAsync(() => Unwrap(label, kekId, copy), cancellationToken);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _pool.Dispose();
            _module.Release();
        }
    }

    private static KeyUnwrapException NotWrappedBy(string kekId, Exception? inner) =>
        new($"the wrapped data key is not valid under key encryption key \"{kekId}\"", inner);

    private byte[] Wrap(string label, ReadOnlySpan<byte> dek)
    {
        // The span cannot cross into the pool's delegate; this pinned copy is zeroed as soon as the wrap is done.
        byte[] key = GC.AllocateArray<byte>(dek.Length, pinned: true);
        dek.CopyTo(key);
        try
        {
            return _pool.Run(session => WithKey(session, label, wrapOnly: true, handle => session.Wrap(handle, key)));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private byte[] Unwrap(string label, string kekId, byte[] wrapped) => _pool.Run(session => WithKey(session, label, wrapOnly: false, handle =>
    {
        try
        {
            return session.Unwrap(handle, wrapped);
        }
        // Only C_UnwrapKey judges the wrapped bytes: a failure after it (reading or destroying the data key object)
        // is the device's, never a verdict that the stored value is corrupt.
        catch (Pkcs11Exception ex) when (ex.Method == UnwrapMethod && Pkcs11Errors.IsInvalidWrappedKey(ex.RV))
        {
            throw NotWrappedBy(kekId, ex);
        }
        catch (Pkcs11Exception ex) when (ex.Method == UnwrapMethod && Pkcs11Errors.MayBeInvalidWrappedKey(ex.RV))
        {
            // SoftHSM2 answers a failed integrity check with CKR_GENERAL_ERROR. If the session, the key and the
            // token all still answer, it was the data; otherwise it was the device, and the pool recovers.
            try
            {
                session.Probe(handle);
                session.ProbeToken();
            }
            catch (Pkcs11Exception)
            {
                ExceptionDispatchInfo.Throw(ex);
            }

            throw NotWrappedBy(kekId, ex);
        }
    }));

    /// <summary>Runs <paramref name="operation"/> with the key labelled <paramref name="label"/>, finding it again if its handle went stale.</summary>
    private T WithKey<T>(Pkcs11Session session, string label, bool wrapOnly, Func<ulong, T> operation)
    {
        if (!_pool.TryGetKeyHandle(label, session.ModuleGeneration, out ulong handle))
        {
            handle = FindKey(session, label, wrapOnly);
        }

        try
        {
            return operation(handle);
        }
        catch (Pkcs11Exception ex) when (Pkcs11Errors.IsKeyHandleInvalid(ex.RV))
        {
            _pool.ForgetKeyHandle(label);
            return operation(FindKey(session, label, wrapOnly));
        }
    }

    private ulong FindKey(Pkcs11Session session, string label, bool wrapOnly)
    {
        List<Pkcs11KeyInfo> keys = session.FindSecretKeys(label);
        if (keys.Count == 0)
        {
            // A token whose storage vanished finds nothing rather than failing: tell that apart from a deleted key.
            session.ProbeToken();
            if (wrapOnly)
            {
                throw new KeyProviderUnavailableException(
                    $"--pkcs11-key-label {Family}: no key labelled \"{label}\" in {_pool.Where} any more; was it deleted?");
            }

            throw new UnknownKeyException(Pkcs11KeyLabel.ToKekId(label));
        }

        if (keys.Count > 1)
        {
            throw new KeyProviderUnavailableException(
                $"{keys.Count} secret keys are labelled \"{label}\" in {_pool.Where}; a KEK label must be unique");
        }

        _pool.RememberKeyHandle(label, session.ModuleGeneration, keys[0].Handle);
        return keys[0].Handle;
    }

    private List<Pkcs11KekVersion> VersionsIn(List<Pkcs11KeyInfo> keys)
    {
        List<Pkcs11KekVersion> versions = [];
        foreach (Pkcs11KeyInfo key in keys)
        {
            if (Pkcs11KeyLabel.TryGetVersion(Family, key.Label, out int version))
            {
                versions.Add(new Pkcs11KekVersion(version, key));
            }
        }

        versions.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (int i = 1; i < versions.Count; i++)
        {
            if (versions[i].Version == versions[i - 1].Version)
            {
                throw new KeyProviderUnavailableException(
                    $"two secret keys are labelled \"{versions[i].Label}\" in {_pool.Where}; a KEK label must be unique");
            }
        }

        return versions;
    }

    private Pkcs11KeyEncryptionKey Kek(string label)
    {
        lock (_versionKeks)
        {
            if (!_versionKeks.TryGetValue(label, out Pkcs11KeyEncryptionKey? kek))
            {
                _versionKeks[label] = kek = new Pkcs11KeyEncryptionKey(this, label);
            }

            return kek;
        }
    }

    /// <summary>
    /// Keys the proxy will not unwrap with are still a risk: whoever can use one can wrap data keys of their own
    /// under it, and the token is only as dedicated as the operator keeps it. Warned once per label.
    /// </summary>
    private void WarnAboutForeignKeys(List<Pkcs11KeyInfo> keys)
    {
        foreach (Pkcs11KeyInfo key in keys)
        {
            if (!key.Unwrap || Settings.MayUnwrap(key.Label))
            {
                continue;
            }

            lock (_warnedForeignLabels)
            {
                if (!_warnedForeignLabels.Add(key.Label))
                {
                    continue;
                }
            }

            Log.ForeignUnwrapKey(_logger, key.Label, _pool.Where, Family);
        }
    }

    private void WarnOnce(Pkcs11KeyInfo key)
    {
        lock (_warnedLabels)
        {
            if (!_warnedLabels.Add(key.Label))
            {
                return;
            }
        }

        foreach (string weakness in key.Weaknesses())
        {
            Log.WeakKek(_logger, weakness);
        }
    }

    /// <summary>
    /// PKCS#11 calls block, and a hung HSM may never return: the caller waits at most the operation timeout, and
    /// a call that overruns finishes (and gives its session back) in the background.
    /// </summary>
    private async Task<T> OffThreadAsync<T>(Func<T> operation, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Task<T> call = Task.Run(operation, CancellationToken.None);
        try
        {
            return await call.WaitAsync(Settings.OperationTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            throw new KeyProviderUnavailableException(
                $"{_pool.Where} did not answer within {Settings.OperationTimeout.TotalSeconds:0} s", ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.WeakKek, EventName = nameof(EventIds.WeakKek), Level = LogLevel.Warning, Message = "Key-encryption key: {Weakness}")]
        public static partial void WeakKek(ILogger logger, string weakness);

        [LoggerMessage(EventId = EventIds.KekCreated, EventName = nameof(EventIds.KekCreated), Level = LogLevel.Information,
            Message = "Created key-encryption key \"{Label}\" (envelope id {KekId}) in {Where}")]
        public static partial void KekCreated(ILogger logger, string label, string kekId, string where);

        [LoggerMessage(EventId = EventIds.PinFileReadableByOthers, EventName = nameof(EventIds.PinFileReadableByOthers), Level = LogLevel.Warning,
            Message = "--pkcs11-pin-file {Path} is readable by group or others; restrict it with: chmod 600")]
        public static partial void PinFileReadableByOthers(ILogger logger, string path);

        [LoggerMessage(EventId = EventIds.ForeignUnwrapKey, EventName = nameof(EventIds.ForeignUnwrapKey), Level = LogLevel.Warning,
            Message = "Secret key \"{Label}\" in {Where} can unwrap keys but is neither a version of --pkcs11-key-label {Family} nor a --pkcs11-retired-key-label: values naming it are refused as unknown; keep the token dedicated to EtcdShield, or retire the label if values still use it")]
        public static partial void ForeignUnwrapKey(ILogger logger, string label, string where, string family);
    }
}

/// <summary>One version of a KEK family in the token.</summary>
internal sealed record Pkcs11KekVersion(int Version, Pkcs11KeyInfo Key)
{
    public string Label => Key.Label;

    public string KekId => Pkcs11KeyLabel.ToKekId(Key.Label);
}

/// <summary>A <c>keys create</c> or <c>keys rotate</c> that cannot be done as asked (the HSM itself is fine).</summary>
internal sealed class Pkcs11KeyFamilyException : Exception
{
    public Pkcs11KeyFamilyException(string message)
        : base(message)
    {
    }

    public Pkcs11KeyFamilyException()
    {
    }

    public Pkcs11KeyFamilyException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
