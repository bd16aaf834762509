namespace EtcdShield.Reload;

/// <summary>The part of <see cref="ReloadableFiles{T}"/> the reloader and /health need, whatever it loads.</summary>
internal interface IReloadable
{
    string Name { get; }

    IReadOnlyList<string> Paths { get; }

    string? LastError { get; }

    ReloadOutcome ReloadIfChanged();
}
