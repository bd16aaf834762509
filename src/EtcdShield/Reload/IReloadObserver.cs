namespace EtcdShield.Reload;

/// <summary>
/// Told after each look at the reloadable files (and once at start-up), whatever changed: for state that depends
/// on the loaded files and on the clock, such as a certificate entering its expiry warning window.
/// </summary>
internal interface IReloadObserver
{
    void FilesChecked();
}
