using System.Security.Cryptography;
using EtcdShield.Encryption;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// Logged-in sessions on one token, each used by one caller at a time (PKCS#11 sessions are not thread-safe), at
/// most <see cref="Pkcs11Settings.MaxSessions"/> at once. Login is per application and token, so the first session
/// logs in and later ones inherit it; a session found logged out (after a token reset) logs in again.
/// </summary>
/// <remarks>
/// Recovery: when a call fails because the token, the session or the module is gone, every session is dropped and
/// the call is tried once more on a fresh session. If the token still cannot be found, the module is reinitialized
/// (some modules, SoftHSM2 among them, only see a token that came back after C_Finalize/C_Initialize) and the call
/// tried a last time. Either way the next call starts over, so the proxy recovers on its own when the HSM returns.
/// A PIN the token refused is never tried again until --pkcs11-pin-file changes: each try counts towards locking
/// the token.
/// </remarks>
internal sealed partial class Pkcs11SessionPool : IDisposable
{
    private readonly Pkcs11Module _module;
    private readonly Pkcs11Settings _settings;
    private readonly bool _readWrite;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _slots;
    private readonly Lock _state = new();
    private readonly Stack<Pkcs11Session> _idle = new();
    private readonly Dictionary<string, ulong> _keyHandles = new(StringComparer.Ordinal);
    private ulong? _slot;
    private long _generation;
    private long _moduleGeneration = -1;
    private Pkcs11Pin.FileStamp? _refusedPin;
    private bool _degraded;
    private bool _disposed;

    public Pkcs11SessionPool(Pkcs11Module module, Pkcs11Settings settings, bool readWrite, ILogger logger)
    {
        _module = module;
        _settings = settings;
        _readWrite = readWrite;
        _logger = logger;
        _slots = new SemaphoreSlim(settings.MaxSessions, settings.MaxSessions);
    }

    /// <summary>"token \"x\" (--pkcs11-module /path)", for messages.</summary>
    public string Where => $"{_settings.TokenDescription} of PKCS#11 module {_settings.ModulePath}";

    /// <summary>
    /// Runs <paramref name="body"/> on a logged-in session, recovering from a lost token as described above.
    /// <see cref="EnvelopeException"/>s from the body pass through (the session stays usable); any failure of the
    /// HSM becomes <see cref="KeyProviderUnavailableException"/> with an operator-readable message.
    /// </summary>
    public T Run<T>(Func<Pkcs11Session, T> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (!_slots.Wait(_settings.OperationTimeout))
        {
            throw new KeyProviderUnavailableException(
                $"all {_settings.MaxSessions} sessions with {Where} stayed busy for {_settings.OperationTimeout.TotalSeconds:0} s");
        }

        try
        {
            return RunWithRecovery(body);
        }
        finally
        {
            _slots.Release();
        }
    }

    public bool TryGetKeyHandle(string label, long moduleGeneration, out ulong handle)
    {
        lock (_state)
        {
            handle = 0;
            return moduleGeneration == _moduleGeneration && _keyHandles.TryGetValue(label, out handle);
        }
    }

    public void RememberKeyHandle(string label, long moduleGeneration, ulong handle)
    {
        lock (_state)
        {
            // Handles of token objects hold for the whole application, but only within one initialization.
            if (moduleGeneration == _moduleGeneration && _keyHandles.Count < 64)
            {
                _keyHandles[label] = handle;
            }
        }
    }

    public void ForgetKeyHandle(string label)
    {
        lock (_state)
        {
            _keyHandles.Remove(label);
        }
    }

    public void Dispose()
    {
        List<Pkcs11Session> sessions;
        lock (_state)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            sessions = [.. _idle];
            _idle.Clear();
        }

        CloseAll(sessions);
        _slots.Dispose();
    }

    private T RunWithRecovery<T>(Func<Pkcs11Session, T> body)
    {
        Exception? failure = null;
        bool reinitialized = false;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            long observedModule = ModuleGenerationNow();
            bool tokenMissing = false;
            try
            {
                T result = RunOnce(body, ref observedModule);
                MarkHealthy();
                return result;
            }
            catch (Pkcs11Exception ex) when (Pkcs11Errors.IsTokenLost(ex.RV))
            {
                failure = ex;
                Invalidate(Pkcs11Errors.Name(ex.RV));
            }
            catch (TokenMissingException ex)
            {
                failure = ex;
                tokenMissing = true;
            }
            catch (ModuleDownException ex)
            {
                failure = ex.InnerException;
                tokenMissing = true;
            }
            catch (Pkcs11Exception ex)
            {
                // Not a lost token: the HSM refused this operation, and trying again would not change its mind.
                throw new KeyProviderUnavailableException($"{Where}: {ex.Method} failed: {Pkcs11Errors.Describe(ex.RV)}", ex);
            }

            // A fresh session first; if the token is still lost or cannot be found, reinitialize the module once.
            if (tokenMissing || attempt > 0)
            {
                if (reinitialized)
                {
                    break;
                }

                if (!_module.Reinitialize(observedModule))
                {
                    break;
                }

                reinitialized = true;
                Log.ModuleReinitialized(_logger, _settings.ModulePath);
            }
        }

        throw failure switch
        {
            Pkcs11Exception p11 => new KeyProviderUnavailableException($"{Where}: {p11.Method} failed: {Pkcs11Errors.Describe(p11.RV)}", p11),
            KeyProviderUnavailableException unavailable => unavailable,
            TokenMissingException missing => new KeyProviderUnavailableException(missing.Message),
            _ => new KeyProviderUnavailableException($"{Where} is unavailable", failure),
        };
    }

    private T RunOnce<T>(Func<Pkcs11Session, T> body, ref long observedModule)
    {
        Pkcs11Module.CallScope call;
        try
        {
            call = _module.EnterCall();
        }
        catch (KeyProviderUnavailableException ex)
        {
            throw new ModuleDownException(ex);
        }

        using (call)
        {
            observedModule = call.Generation;
            Pkcs11Session session = Take(call);
            bool reusable = false;
            try
            {
                T result = body(session);
                reusable = true;
                return result;
            }
            catch (EnvelopeException)
            {
                // The answer is about the data or the key, not the session.
                reusable = true;
                throw;
            }
            finally
            {
                if (reusable)
                {
                    Return(session, call);
                }
                else
                {
                    session.CloseQuietly(call);
                }
            }
        }
    }

    /// <summary>
    /// The module's generation, not the last one this pool used: after a failed reinitialization the module is down
    /// in a newer generation, and an older one would make <see cref="Pkcs11Module.Reinitialize"/> answer "done
    /// already" to every pool for ever.
    /// </summary>
    private long ModuleGenerationNow() => _module.Generation;

    private Pkcs11Session Take(in Pkcs11Module.CallScope call)
    {
        List<Pkcs11Session> stale = [];
        ulong? slot;
        long generation;
        lock (_state)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_moduleGeneration != call.Generation)
            {
                // The module was reinitialized (maybe by another pool): every handle we hold died with it.
                _moduleGeneration = call.Generation;
                _generation++;
                _slot = null;
                _keyHandles.Clear();
            }

            while (_idle.TryPop(out Pkcs11Session? idle))
            {
                if (idle.PoolGeneration == _generation && idle.ModuleGeneration == call.Generation)
                {
                    return idle;
                }

                stale.Add(idle);
            }

            slot = _slot;
            generation = _generation;
        }

        foreach (Pkcs11Session old in stale)
        {
            old.CloseQuietly(call);
        }

        ulong slotId = slot ?? FindSlot(call);
        Pkcs11Session session = new(call.Library, call.Library.OpenSession(slotId, _readWrite), slotId, call.Generation, generation);
        try
        {
            if (session.IsSecurityOfficer)
            {
                throw new KeyProviderUnavailableException(
                    $"{Where} is logged in as the security officer in this process; EtcdShield needs a user login");
            }

            if (!session.IsLoggedIn)
            {
                LogIn(session);
            }
        }
        catch
        {
            session.CloseQuietly(call);
            throw;
        }

        lock (_state)
        {
            if (_generation == generation && _slot is null)
            {
                _slot = slotId;
            }
        }

        return session;
    }

    private void Return(Pkcs11Session session, in Pkcs11Module.CallScope call)
    {
        lock (_state)
        {
            if (!_disposed && session.PoolGeneration == _generation && session.ModuleGeneration == _moduleGeneration)
            {
                _idle.Push(session);
                return;
            }
        }

        session.CloseQuietly(call);
    }

    private ulong FindSlot(in Pkcs11Module.CallScope call)
    {
        ulong[] slots = call.Library.GetSlotsWithToken();
        List<string> seen = [];
        List<ulong> matches = [];
        foreach (ulong slot in slots)
        {
            (string Label, bool Initialized) token;
            try
            {
                token = call.Library.GetTokenInfo(slot);
            }
            catch (Pkcs11Exception)
            {
                // A token whose storage vanished still has a slot, but it cannot be used (SoftHSM2 answers
                // CKR_GENERAL_ERROR): treat it as absent.
                continue;
            }

            if (!token.Initialized)
            {
                // Modules such as SoftHSM2 keep a free slot with an empty token for the next C_InitToken.
                continue;
            }

            string label = token.Label;
            seen.Add(_settings.Slot is null ? $"\"{label}\"" : $"slot {slot} \"{label}\"");
            bool wanted = _settings.Slot is { } id ? slot == id : string.Equals(label, _settings.TokenLabel, StringComparison.Ordinal);
            if (wanted)
            {
                matches.Add(slot);
            }
        }

        string present = seen.Count == 0 ? "none" : string.Join(", ", seen);
        return matches.Count switch
        {
            1 => matches[0],
            0 when _settings.Slot is { } id => throw new TokenMissingException(
                $"no initialized token in slot {id} (--pkcs11-slot) of PKCS#11 module {_settings.ModulePath}; tokens present: {present}"),
            0 => throw new TokenMissingException(
                $"no token labelled \"{_settings.TokenLabel}\" (--pkcs11-token-label) in PKCS#11 module {_settings.ModulePath}; tokens present: {present}"),
            _ => throw new KeyProviderUnavailableException(
                $"{matches.Count} tokens are labelled \"{_settings.TokenLabel}\" in PKCS#11 module {_settings.ModulePath}; pick one with --pkcs11-slot"),
        };
    }

    private void LogIn(Pkcs11Session session)
    {
        Pkcs11Pin.FileStamp stamp = Pkcs11Pin.Stamp(_settings.PinFile);
        lock (_state)
        {
            if (_refusedPin == stamp)
            {
                throw new KeyProviderUnavailableException(
                    $"{Where} refused the PIN in --pkcs11-pin-file {_settings.PinFile}; EtcdShield will not try it again " +
                    "until the file changes, since every refused try counts towards locking the token");
            }
        }

        byte[] pin = Pkcs11Pin.Read(_settings.PinFile);
        try
        {
            session.Login(pin);
            Log.LoggedIn(_logger, _settings.TokenDescription);
        }
        catch (Pkcs11Exception ex) when (Pkcs11Errors.IsPinRefused(ex.RV))
        {
            lock (_state)
            {
                _refusedPin = stamp;
            }

            throw new KeyProviderUnavailableException($"{Where}: {Pkcs11Errors.Describe(ex.RV)}", ex);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pin);
        }
    }

    private void Invalidate(string reason)
    {
        List<Pkcs11Session> sessions;
        bool first;
        lock (_state)
        {
            _generation++;
            _slot = null;
            _keyHandles.Clear();
            sessions = [.. _idle];
            _idle.Clear();
            first = !_degraded;
            _degraded = true;
        }

        CloseAll(sessions);
        if (first)
        {
            Log.TokenLost(_logger, _settings.TokenDescription, reason);
        }
    }

    /// <summary>Closes sessions taken off the idle stack, under a call scope so that no reinitialization runs meanwhile.</summary>
    private void CloseAll(List<Pkcs11Session> sessions)
    {
        if (sessions.Count == 0)
        {
            return;
        }

        try
        {
            using Pkcs11Module.CallScope call = _module.EnterCall();
            foreach (Pkcs11Session session in sessions)
            {
                session.CloseQuietly(call);
            }
        }
        catch (KeyProviderUnavailableException)
        {
            // The module is not initialized: its sessions are gone already.
        }
    }

    private void MarkHealthy()
    {
        bool recovered;
        lock (_state)
        {
            recovered = _degraded;
            _degraded = false;
        }

        if (recovered)
        {
            Log.TokenRecovered(_logger, _settings.TokenDescription);
        }
    }

    /// <summary>The token is not (or no longer) among the module's tokens.</summary>
    private sealed class TokenMissingException(string message) : Exception(message);

    /// <summary>The module itself is not initialized (a reinitialization failed).</summary>
    private sealed class ModuleDownException(KeyProviderUnavailableException inner) : Exception(inner.Message, inner);

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.TokenLost, EventName = nameof(EventIds.TokenLost), Level = LogLevel.Warning,
            Message = "Lost the HSM {Token} ({Reason}); dropping its sessions and reconnecting on the next key operation")]
        public static partial void TokenLost(ILogger logger, string token, string reason);

        [LoggerMessage(EventId = EventIds.ModuleReinitialized, EventName = nameof(EventIds.ModuleReinitialized), Level = LogLevel.Warning,
            Message = "Reinitialized PKCS#11 module {Module} (C_Finalize, C_Initialize) to find the token again")]
        public static partial void ModuleReinitialized(ILogger logger, string module);

        [LoggerMessage(EventId = EventIds.TokenRecovered, EventName = nameof(EventIds.TokenRecovered), Level = LogLevel.Information, Message = "The HSM {Token} is available again")]
        public static partial void TokenRecovered(ILogger logger, string token);

        [LoggerMessage(EventId = EventIds.LoggedIn, EventName = nameof(EventIds.LoggedIn), Level = LogLevel.Debug, Message = "Logged in to the HSM {Token}")]
        public static partial void LoggedIn(ILogger logger, string token);
    }
}
