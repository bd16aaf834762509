using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.Migration;

/// <summary>
/// Re-encrypts stored values under the current key-encryption key, and encrypts legacy plaintext, talking to
/// etcd directly. Each rewrite is a transaction guarded by the key's mod_revision, so a value written by
/// someone else after we read it is never overwritten. Values already under the current KEK are skipped,
/// which makes an interrupted run resumable: running it again continues where it left off.
/// Anyone with raw write access to etcd can plant values the proxy refuses; a migration must never turn those into
/// values it serves. So only what authenticates is re-sealed, and plaintext only inside the migration window the
/// operator gave this run; everything else is reported and left as it is.
/// </summary>
internal sealed partial class StorageMigrator
{
    private const int MaxAttemptsPerKey = 5;

    private readonly KV.KVClient _kv;
    private readonly IValueProtector _protector;
    private readonly EncryptionOptions _encryption;
    private readonly Func<string> _currentKekId;
    private readonly ILogger _logger;

    public StorageMigrator(KV.KVClient kv, IValueProtector protector, EncryptionOptions encryption, Func<string> currentKekId, ILogger<StorageMigrator> logger)
    {
        _kv = kv;
        _protector = protector;
        _encryption = encryption;
        _currentKekId = currentKekId;
        _logger = logger;
    }

    public async Task<MigrationReport> RunAsync(ByteString prefix, bool dryRun, int batchSize, Action<long, long>? progress, CancellationToken cancellationToken)
    {
        var report = new MigrationReport { CurrentKekId = _currentKekId(), DryRun = dryRun };
        var (start, end) = KeyRangeOf(prefix);
        long revision = 0;
        long total = 0;
        var next = start;
        while (true)
        {
            var page = await _kv.RangeAsync(
                new RangeRequest { Key = next, RangeEnd = end, Limit = batchSize, Revision = revision },
                cancellationToken: cancellationToken).ConfigureAwait(false);
            if (revision == 0)
            {
                // Scan one consistent snapshot; writes after it were made by the proxy with the current keys.
                revision = page.Header.Revision;
                total = page.Count;
                report.Revision = revision;
            }

            foreach (var kv in page.Kvs)
            {
                await MigrateAsync(kv, report, cancellationToken).ConfigureAwait(false);
                report.Scanned++;
            }

            progress?.Invoke(report.Scanned, total);
            if (!page.More || page.Kvs.Count == 0)
            {
                return report;
            }

            next = ByteString.CopyFrom([.. page.Kvs[^1].Key.Span, 0]);
        }
    }

    private async Task MigrateAsync(KeyValue kv, MigrationReport report, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < MaxAttemptsPerKey; attempt++)
        {
            var state = Classify(kv);
            if (state == StoredState.NotEncrypted)
            {
                report.NotEncrypted++;
                return;
            }

            if (state == StoredState.RefusedPlaintext)
            {
                var printable = PrintableKey.Quote(kv.Key.Span);
                Log.MigrateRefusedPlaintext(_logger, printable);
                report.Refused.Add(printable);
                return;
            }

            if (state == StoredState.Current)
            {
                // Skipping only by the KEK id it names would let a forged or moved envelope pass as migrated.
                if (!await AuthenticatesAsync(kv, report, cancellationToken).ConfigureAwait(false))
                {
                    return;
                }

                if (attempt == 0)
                {
                    report.AlreadyCurrent++;
                }
                else
                {
                    report.OvertakenByWriters++;
                }

                return;
            }

            if (state == StoredState.BoundWithoutProtection)
            {
                var printable = PrintableKey.Quote(kv.Key.Span);
                Log.BoundWithoutProtection(_logger, printable);
                report.Failed.Add(printable);
                return;
            }

            ByteString plaintext;
            ByteString sealedValue;
            try
            {
                plaintext = await _protector.UnprotectAsync(kv.Key, kv.Value, KeyPlace.Of(kv), cancellationToken).ConfigureAwait(false);
                // The rewrite is guarded by the value's mod_revision, so the version it gives the key is this one's next.
                sealedValue = await _protector.ProtectAsync(kv.Key, plaintext, KeyPlace.After(kv), cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.DataLoss)
            {
                var printable = PrintableKey.Quote(kv.Key.Span);
                Log.CannotDecrypt(_logger, printable, e.Status.Detail);
                report.Failed.Add(printable);
                return;
            }

            var from = state == StoredState.Plaintext ? null : ValueEnvelope.Parse(kv.Value.Span).GetKekIdString();
            if (report.DryRun || await RewriteAsync(kv, sealedValue, cancellationToken).ConfigureAwait(false))
            {
                if (from is null)
                {
                    report.PlaintextEncrypted++;
                }
                else
                {
                    report.Rewrapped[from] = report.Rewrapped.GetValueOrDefault(from) + 1;
                }

                return;
            }

            // Someone wrote the key after we read it: look again at what is there now.
            var fresh = await _kv.RangeAsync(new RangeRequest { Key = kv.Key }, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (fresh.Kvs.Count == 0)
            {
                report.Vanished++;
                return;
            }

            kv = fresh.Kvs[0];
        }

        var key = PrintableKey.Quote(kv.Key.Span);
        Log.KeptChanging(_logger, key);
        report.Failed.Add(key);
    }

    private async Task<bool> AuthenticatesAsync(KeyValue kv, MigrationReport report, CancellationToken cancellationToken)
    {
        try
        {
            await _protector.UnprotectAsync(kv.Key, kv.Value, KeyPlace.Of(kv), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.DataLoss)
        {
            var printable = PrintableKey.Quote(kv.Key.Span);
            Log.CannotDecrypt(_logger, printable, e.Status.Detail);
            report.Failed.Add(printable);
            return false;
        }
    }

    private async Task<bool> RewriteAsync(KeyValue kv, ByteString sealedValue, CancellationToken cancellationToken)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = kv.Key, Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = kv.ModRevision });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = kv.Key, Value = sealedValue, Lease = kv.Lease } });
        try
        {
            var response = await _kv.TxnAsync(txn, cancellationToken: cancellationToken).ConfigureAwait(false);
            return response.Succeeded;
        }
        catch (RpcException e) when (e.Status.Detail.Contains("requested lease not found", StringComparison.Ordinal))
        {
            // The key's lease expired while we worked: the key is gone or going; a re-read settles it.
            return false;
        }
    }

    private StoredState Classify(KeyValue kv)
    {
        if (!_protector.AppliesTo(kv.Key.Span))
        {
            return StoredState.NotEncrypted;
        }

        if (!ValueEnvelope.HasEnvelopePrefix(kv.Value.Span))
        {
            return _encryption.AllowsLegacyPlaintext(kv.Key.Span) ? StoredState.Plaintext : StoredState.RefusedPlaintext;
        }

        try
        {
            var header = ValueEnvelope.Parse(kv.Value.Span);
            var protectedKey = _protector.Binds(kv.Key.Span);
            if (header.Version == ValueEnvelope.Version2 && !protectedKey && header.GetKekIdString() != _currentKekId())
            {
                // Re-sealing it here would write v1 and drop its protection (a key rotation run without the flag).
                return StoredState.BoundWithoutProtection;
            }

            // Under rollback protection a v1 envelope is not current whatever KEK wrapped it: it must be bound.
            var bound = header.Version == ValueEnvelope.Version2 || !protectedKey;
            return bound && header.GetKekIdString() == _currentKekId() ? StoredState.Current : StoredState.OldKek;
        }
        catch (EnvelopeFormatException)
        {
            // Broken envelopes are reported by the decrypt attempt.
            return StoredState.OldKek;
        }
    }

    internal static (ByteString Start, ByteString End) KeyRangeOf(ByteString prefix)
    {
        if (prefix.IsEmpty)
        {
            // etcd's "every key": from \0, with range_end \0 meaning "to the end".
            return (ByteString.CopyFrom(0), ByteString.CopyFrom(0));
        }

        var end = prefix.ToByteArray();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xff)
            {
                end[i]++;
                return (prefix, ByteString.CopyFrom(end.AsSpan(0, i + 1)));
            }
        }

        return (prefix, ByteString.CopyFrom(0));
    }

    private enum StoredState
    {
        NotEncrypted,
        Plaintext,
        RefusedPlaintext,
        OldKek,
        Current,
        BoundWithoutProtection,
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.CannotDecrypt, EventName = nameof(EventIds.CannotDecrypt), Level = LogLevel.Warning, Message = "migrate: cannot decrypt the value of {Key}, left as it is: {Reason}")]
        public static partial void CannotDecrypt(ILogger logger, string key, string reason);

        [LoggerMessage(EventId = EventIds.KeptChanging, EventName = nameof(EventIds.KeptChanging), Level = LogLevel.Warning, Message = "migrate: {Key} kept changing under concurrent writers; left for a later run")]
        public static partial void KeptChanging(ILogger logger, string key);

        [LoggerMessage(EventId = EventIds.BoundWithoutProtection, EventName = nameof(EventIds.BoundWithoutProtection), Level = LogLevel.Warning,
            Message = "migrate: the value of {Key} is rollback-protected (envelope v2) but migrate was not given a --rollback-protection-prefix covering it; left as it is, since re-sealing would drop its protection")]
        public static partial void BoundWithoutProtection(ILogger logger, string key);

        [LoggerMessage(EventId = EventIds.MigrateRefusedPlaintext, EventName = nameof(EventIds.MigrateRefusedPlaintext), Level = LogLevel.Warning,
            Message = "migrate: the value of {Key} is not encrypted and outside every --legacy-plaintext-prefix given to migrate; refused and left as it is (was it written around the proxy?)")]
        public static partial void MigrateRefusedPlaintext(ILogger logger, string key);
    }
}
