using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf.Collections;

namespace EtcdShield.Encryption;

/// <summary>
/// Decrypts the values of key-values on their way back to a client, in place, each checked against the place in its
/// key's history etcd reports with it (its own create revision and version, so a watch replaying history reads
/// every old value). A value that cannot be opened fails the whole answer (DATA_LOSS from the protector): a client never receives ciphertext as
/// if it were data, and never a silently shortened list.
/// </summary>
internal sealed class KeyValueOpener
{
    private readonly IValueProtector _protector;

    public KeyValueOpener(IValueProtector protector) => _protector = protector;

    public async ValueTask OpenAsync(KeyValue? kv, CancellationToken cancellationToken)
    {
        // A deletion's tombstone (version 0) has no value to open; keys_only answers are skipped by the caller.
        if (kv is null || (kv.Value.IsEmpty && kv.Version == 0))
        {
            return;
        }

        kv.Value = await _protector.UnprotectAsync(kv.Key, kv.Value, KeyPlace.Of(kv), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask OpenAllAsync(RepeatedField<KeyValue> kvs, CancellationToken cancellationToken)
    {
        foreach (var kv in kvs)
        {
            await OpenAsync(kv, cancellationToken).ConfigureAwait(false);
        }
    }
}
