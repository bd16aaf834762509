using System.Reflection;
using System.Runtime.InteropServices;
using EtcdShield.Encryption;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

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
    private readonly LowLevel.Pkcs11Library _lowLevel;
    private IPkcs11Library? _library;
    private string? _loadFailure;
    private long _generation;
    private long _lastReinitialize;
    private int _references;

    static Pkcs11Module() => EnsureNativeResolver();

    private Pkcs11Module(string path, LowLevel.Pkcs11Library lowLevel, IPkcs11Library library)
    {
        Path = path;
        _lowLevel = lowLevel;
        _library = library;
        _lastReinitialize = Environment.TickCount64;
    }

    public string Path { get; }

    public Pkcs11InteropFactories Factories { get; } = new();

    /// <summary>Loads and initializes the module at <paramref name="path"/>, or takes another reference to it.</summary>
    /// <exception cref="KeyProviderUnavailableException">The module cannot be loaded or initialized.</exception>
    public static Pkcs11Module Acquire(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Platform.NativeULongSize != 8 || Platform.StructPackingSize != 0)
        {
            // Key material passes through buffers this code zeroes, which it lays out for 64-bit Unix only.
            throw new KeyProviderUnavailableException(
                "--pkcs11-module: the PKCS#11 key provider runs on 64-bit Linux and macOS only");
        }

        lock (Registry)
        {
            if (!Loaded.TryGetValue(path, out Pkcs11Module? module))
            {
                LowLevel.Pkcs11Library lowLevel = LoadLowLevel(path);
                try
                {
                    module = new Pkcs11Module(path, lowLevel, Initialize(new Pkcs11InteropFactories(), path));
                }
                catch
                {
                    lowLevel.Dispose();
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
            _lowLevel.Dispose();
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
        IPkcs11Library? library = _library;
        if (library is null)
        {
            _calls.ExitReadLock();
            throw new KeyProviderUnavailableException(
                $"PKCS#11 module {Path} (--pkcs11-module) is not initialized: {_loadFailure ?? "it failed to initialize"}");
        }

        return new CallScope(this, library, Interlocked.Read(ref _generation));
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

            if (TimeSpan.FromMilliseconds(Environment.TickCount64 - _lastReinitialize) < ReinitializeInterval)
            {
                return false;
            }

            _lastReinitialize = Environment.TickCount64;
            FinalizeLibrary();
            Interlocked.Increment(ref _generation);
            try
            {
                _library = Initialize(Factories, Path);
                _loadFailure = null;
                return true;
            }
            catch (KeyProviderUnavailableException ex)
            {
                _loadFailure = ex.Message;
                return false;
            }
        }
        finally
        {
            _calls.ExitWriteLock();
        }
    }

    /// <summary>
    /// Pkcs11Interop 5.3 binds dlopen to "libdl", a name glibc 2.34+ no longer ships unversioned (only libdl.so.2,
    /// and libc itself, export it now). Maps that one name; every other library resolves as usual.
    /// </summary>
    internal static void EnsureNativeResolver()
    {
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, ResolveNative);
        }
        catch (InvalidOperationException)
        {
            // Already set for this assembly (the resolver can be set only once); it is this one.
        }
    }

    private static IntPtr ResolveNative(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!string.Equals(name, "libdl", StringComparison.Ordinal) || !OperatingSystem.IsLinux())
        {
            return IntPtr.Zero;
        }

        foreach (string candidate in (ReadOnlySpan<string>)["libdl.so.2", "libc.so.6"])
        {
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle))
            {
                return handle;
            }
        }

        return IntPtr.Zero;
    }

    private static LowLevel.Pkcs11Library LoadLowLevel(string path)
    {
        try
        {
            return new LowLevel.Pkcs11Library(path);
        }
        catch (Exception ex) when (ex is UnmanagedException or DllNotFoundException or BadImageFormatException or EntryPointNotFoundException)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-module {path}: cannot load the PKCS#11 module ({ex.Message})", ex);
        }
    }

    private static IPkcs11Library Initialize(Pkcs11InteropFactories factories, string path)
    {
        try
        {
            // MultiThreaded: the module must lock for itself, since sessions are used from many threads (one at a time each).
            return factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, path, AppType.MultiThreaded);
        }
        catch (Pkcs11Exception ex)
        {
            throw new KeyProviderUnavailableException(
                $"--pkcs11-module {path}: C_Initialize failed: {Pkcs11Errors.Describe(ex.RV)}", ex);
        }
        catch (Exception ex) when (ex is UnmanagedException or DllNotFoundException or BadImageFormatException or EntryPointNotFoundException)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-module {path}: cannot load the PKCS#11 module ({ex.Message})", ex);
        }
    }

    private void FinalizeLibrary()
    {
        IPkcs11Library? library = _library;
        _library = null;
        try
        {
            library?.Dispose();
        }
        catch (Pkcs11Exception)
        {
            // C_Finalize of a module whose device is gone may fail; the module is being dropped either way.
        }
    }

    /// <summary>A call in progress: the module cannot be reinitialized until it is disposed.</summary>
    internal readonly ref struct CallScope
    {
        private readonly Pkcs11Module _module;

        public CallScope(Pkcs11Module module, IPkcs11Library library, long generation)
        {
            _module = module;
            Library = library;
            Generation = generation;
        }

        public IPkcs11Library Library { get; }

        /// <summary>Increases with every reinitialization; sessions from another generation are dead.</summary>
        public long Generation { get; }

        public Pkcs11InteropFactories Factories => _module.Factories;

        /// <summary>The raw API, for the calls that pass key material through buffers we control and zero.</summary>
        public LowLevel.Pkcs11Library LowLevel => _module._lowLevel;

        public void Dispose() => _module._calls.ExitReadLock();
    }
}
