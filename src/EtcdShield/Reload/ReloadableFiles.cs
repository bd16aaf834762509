using EtcdShield.Configuration;

namespace EtcdShield.Reload;

/// <summary>
/// Something the proxy loads from files and can load again while it runs: the serving certificate, the client
/// trust (CAs and CRL), the policy. A new version is built completely before it replaces the old one, and a
/// version that fails to load leaves the last good one in place.
/// </summary>
/// <typeparam name="T">The loaded, immutable form.</typeparam>
internal sealed class ReloadableFiles<T> : IReloadable
    where T : class
{
    private readonly IReadOnlyList<string> _paths;
    private readonly Func<T> _load;
    private readonly Lock _reloading = new();
    private volatile T _current;
    private string _fingerprint;

    /// <param name="load">Reads the files; throws <see cref="ConfigurationException"/> saying what is wrong.</param>
    public ReloadableFiles(string name, IReadOnlyList<string> paths, Func<T> load)
    {
        Name = name;
        _paths = paths;
        _load = load;
        _fingerprint = FileFingerprint.Of(paths);
        // At start-up a broken file is fatal: there is no last good version to keep.
        _current = load();
    }

    /// <summary>What this is, for logs, metrics and /health: "policy", "server certificate", "client trust".</summary>
    public string Name { get; }

    public IReadOnlyList<string> Paths => _paths;

    public T Current => _current;

    /// <summary>
    /// Raised, on the reloading thread, after a new version became <see cref="Current"/>: what was judged under the
    /// old one (open streams) is judged again. Handlers must return quickly and not throw.
    /// </summary>
    public event Action? Reloaded;

    /// <summary>Why the newest files could not be used; null while the current version is the newest.</summary>
    public string? LastError { get; private set; }

    /// <summary>Loads the files again if their contents changed since the last attempt.</summary>
    public ReloadOutcome ReloadIfChanged()
    {
        lock (_reloading)
        {
            try
            {
                var fingerprint = FileFingerprint.Of(_paths);
                if (fingerprint == _fingerprint)
                {
                    return ReloadOutcome.Unchanged;
                }

                _fingerprint = fingerprint;
                _current = _load();
                LastError = null;
            }
            catch (ConfigurationException e)
            {
                LastError = e.Message;
                return ReloadOutcome.Failed;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Whatever the loader did not expect (a file system error, a parser's own exception) must not stop
                // the proxy from serving with the last good version: a reload is never worth the process.
                LastError = $"{e.GetType().Name}: {e.Message}";
                return ReloadOutcome.Failed;
            }
        }

        Reloaded?.Invoke();
        return ReloadOutcome.Reloaded;
    }
}

internal enum ReloadOutcome
{
    Unchanged,
    Reloaded,
    Failed,
}
