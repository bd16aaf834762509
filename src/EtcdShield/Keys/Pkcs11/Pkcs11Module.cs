using EtcdShield.Encryption;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// One PKCS#11 module per path for the whole process. A module is initialized once per process (C_Initialize)
/// and its login state is per process and token, so every user of a path shares this instance; it is
/// finalized when the last user lets go.
/// </summary>
/// <remarks>
/// Some modules (SoftHSM2 among them) only rediscover tokens, or recover from a token whose storage went away,
/// after C_Finalize and C_Initialize. <see cref="Reinitialize"/> does that, but C_Finalize under a call in
/// progress is undefined behaviour, so every call holds <see cref="EnterCall"/>'s read lock and reinitializing
/// takes the write lock. Sessions opened before a reinitialization are dead: callers compare
/// <see cref="CallScope.Generation"/> with the generation their sessions were opened in.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "Shared and reference-counted: Release, not Dispose, ends it.")]
internal sealed class Pkcs11Module
{
    /// <summary>The least time between two reinitializations, so a missing token does not cause a storm of them.</summary>
    private static readonly TimeSpan ReinitializeInterval = TimeSpan.FromSeconds(1);

    private static readonly Lock Registry = new();
    private static readonly Dictionary<string, Pkcs11Module> Loaded = new(StringComparer.Ordinal);

    private readonly ReaderWriterLockSlim _calls = new(LockRecursionPolicy.NoRecursion);
    private readonly CryptokiLibrary _library;
    private bool _initialized;
    private string? _loadFailure;
    private long _generation;
    private readonly TimeProvider _time;
    private long _lastReinitialize;
    private int _references;

    private Pkcs11Module(string path, CryptokiLibrary library, TimeProvider time)
    {
        Path = path;
        _library = library;
        _initialized = true;
        _time = time;
        _lastReinitialize = time.GetTimestamp();
    }

    public string Path { get; }

    /// <summary>
    /// The current initialization, also while the module is down: a caller that failed to enter a call passes it to
    /// <see cref="Reinitialize"/>, so a reinitialization that failed is tried again rather than taken as done.
    /// </summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>Loads and initializes the module at <paramref name="path"/>, or takes another reference to it.</summary>
    /// <exception cref="KeyProviderUnavailableException">The module cannot be loaded or initialized.</exception>
    public static Pkcs11Module Acquire(string path) => Acquire(path, Load, TimeProvider.System);

    /// <summary><see cref="Acquire(string)"/> with another loader and clock (the unit tests' fake modules).</summary>
    internal static Pkcs11Module Acquire(string path, Func<string, CryptokiLibrary> load, TimeProvider time)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!CryptokiLibrary.IsSupportedPlatform)
        {
            // The Cryptoki declarations are those of 64-bit Unix (CK_ULONG of 64 bits, natural alignment).
            throw new KeyProviderUnavailableException(
                "--pkcs11-module: the PKCS#11 key provider runs on 64-bit Linux and macOS only");
        }

        lock (Registry)
        {
            if (!Loaded.TryGetValue(path, out Pkcs11Module? module))
            {
                CryptokiLibrary library = load(path);
                try
                {
                    _ = Initialize(library);
                    module = new Pkcs11Module(path, library, time);
                }
                catch
                {
                    library.Dispose();
                    throw;
                }

                Loaded.Add(path, module);
            }

            module._references++;
            return module;
        }
    }

    /// <summary>Drops one reference; the last one finalizes and unloads the module.</summary>
    public void Release()
    {
        lock (Registry)
        {
            if (--_references > 0)
            {
                return;
            }

            Loaded.Remove(Path);
        }

        _calls.EnterWriteLock();
        try
        {
            FinalizeLibrary();
            _library.Dispose();
        }
        finally
        {
            _calls.ExitWriteLock();
        }

        // Nobody holds a reference any more, so nobody can be waiting on the lock.
        _calls.Dispose();
    }

    /// <summary>Holds off reinitialization while a caller uses the module; dispose on the same thread.</summary>
    /// <exception cref="KeyProviderUnavailableException">The module is not initialized (a reinitialization failed).</exception>
    public CallScope EnterCall()
    {
        _calls.EnterReadLock();
        if (!_initialized)
        {
            _calls.ExitReadLock();
            throw new KeyProviderUnavailableException(
                $"PKCS#11 module {Path} (--pkcs11-module) is not initialized: {_loadFailure ?? "it failed to initialize"}");
        }

        return new CallScope(this, Interlocked.Read(ref _generation));
    }

    /// <summary>
    /// C_Finalize then C_Initialize, unless someone already did it since <paramref name="observedGeneration"/>
    /// (returns true: just retry) or did it too recently (returns false). Must not be called inside a
    /// <see cref="CallScope"/>.
    /// </summary>
    public bool Reinitialize(long observedGeneration)
    {
        if (Interlocked.Read(ref _generation) != observedGeneration)
        {
            return true;
        }

        // A call stuck in the module must not stop the others from failing fast.
        if (!_calls.TryEnterWriteLock(TimeSpan.FromSeconds(5)))
        {
            return false;
        }

        try
        {
            if (_generation != observedGeneration)
            {
                return true;
            }

            if (_time.GetElapsedTime(_lastReinitialize) < ReinitializeInterval)
            {
                return false;
            }

            _lastReinitialize = _time.GetTimestamp();
            FinalizeLibrary();
            try
            {
                if (Initialize(_library, finalizeMayHaveFailed: true))
                {
                    // Every session and handle died with C_Finalize.
                    Interlocked.Increment(ref _generation);
                }

                _initialized = true;
                _loadFailure = null;
                return true;
            }
            catch (KeyProviderUnavailableException ex)
            {
                Interlocked.Increment(ref _generation);
                _loadFailure = ex.Message;
                return false;
            }
        }
        finally
        {
            _calls.ExitWriteLock();
        }
    }

    private static CryptokiLibrary Load(string path)
    {
        try
        {
            return CryptokiLibrary.Load(path);
        }
        catch (Pkcs11Exception ex)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-module {path}: {ex.Method} failed: {Pkcs11Errors.Describe(ex.RV)}", ex);
        }
        catch (Exception ex) when (ex is DllNotFoundException or BadImageFormatException or EntryPointNotFoundException)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-module {path}: cannot load the PKCS#11 module ({ex.Message})", ex);
        }
    }

    /// <summary>
    /// C_Initialize: true when it initialized the module, false when <paramref name="finalizeMayHaveFailed"/> and the
    /// module says it is initialized still, because our C_Finalize did not take: its sessions and handles live on.
    /// </summary>
    private static bool Initialize(CryptokiLibrary library, bool finalizeMayHaveFailed = false)
    {
        try
        {
            // With OS locking: the module must lock for itself, since sessions are used from many threads (one at a time each).
            library.Initialize();
            return true;
        }
        catch (Pkcs11Exception ex) when (finalizeMayHaveFailed && ex.RV == CKR.CKR_CRYPTOKI_ALREADY_INITIALIZED)
        {
            return false;
        }
        catch (Pkcs11Exception ex)
        {
            throw new KeyProviderUnavailableException(
                $"--pkcs11-module {library.Path}: C_Initialize failed: {Pkcs11Errors.Describe(ex.RV)}", ex);
        }
    }

    private void FinalizeLibrary()
    {
        if (!_initialized)
        {
            return;
        }

        _initialized = false;
        try
        {
            // C_Finalize of a module whose device is gone may fail; the module is being dropped either way.
            _ = _library.FinalizeModule();
        }
        catch (Pkcs11Exception)
        {
            // The module has no C_Finalize to call.
        }
    }

    /// <summary>A call in progress: the module cannot be reinitialized until it is disposed.</summary>
    internal readonly ref struct CallScope
    {
        private readonly Pkcs11Module _module;

        public CallScope(Pkcs11Module module, long generation)
        {
            _module = module;
            Generation = generation;
        }

        /// <summary>The module's functions, initialized for the length of this scope.</summary>
        public CryptokiLibrary Library => _module._library;

        /// <summary>Increases with every reinitialization; sessions from another generation are dead.</summary>
        public long Generation { get; }

        public void Dispose() => _module._calls.ExitReadLock();
    }
}
