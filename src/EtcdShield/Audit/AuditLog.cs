using System.Buffers;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Telemetry;

namespace EtcdShield.Audit;

/// <summary>
/// The audit log: one JSON line per request (and per watch created on a stream) with time, identity, peer, method,
/// keys, outcome, status code and latency, to <c>--audit-log</c> (a size-rotated file, or "-" for stdout).
/// Never a value: requests are described by their keys alone, and <c>--audit-hash-keys</c> replaces those by
/// their SHA-256. Lines are formatted on the request's thread and written by one background writer.
/// </summary>
internal sealed partial class AuditLog : BackgroundService
{
    /// <summary>The "Audit" feature's meter; this class is its only owner.</summary>
    public const string MeterName = "EtcdShield.Audit";

    private const int QueueCapacity = 65_536;
    private const int MaxKeysPerLine = 32;

    private readonly Channel<byte[]> _lines;
    private readonly IAuditSink? _sink;
    private readonly bool _hashKeys;
    private readonly ILogger _logger;
    private readonly Counter<long> _dropped;
    private int _droppedSinceWarning;
    private bool _stopping;
    private volatile string? _writeError;

    public AuditLog(ShieldOptions options, IMeterFactory meters, ILogger<AuditLog> logger)
    {
        _logger = logger;
        _hashKeys = options.AuditHashKeys;
        _sink = options.AuditLog switch
        {
            null => null,
            "-" => new StandardOutputSink(),
            var path => new RotatingFileSink(path, options.AuditLogMaxBytes, options.AuditLogMaxBackups),
        };
        _lines = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });
        _dropped = meters.Create(MeterName).CreateCounter<long>(
            "etcdshield.audit.dropped", unit: "{record}", description: "Audit records lost because the audit log could not keep up.");
        if (_sink is not null)
        {
            // Both reasons exported from the start, so that an alert's increase() counts the first lost record too.
            _dropped.Add(0, new KeyValuePair<string, object?>("reason", "queue_full"));
            _dropped.Add(0, new KeyValuePair<string, object?>("reason", "write_failed"));
        }
    }

    public bool Enabled => _sink is not null;

    /// <summary>Why the last record could not be written; null while records are written. Shown by /health.</summary>
    public string? WriteError => _writeError;

    public void Record(in AuditEntry entry)
    {
        if (_sink is null)
        {
            return;
        }

        if (!_lines.Writer.TryWrite(Format(entry)))
        {
            _dropped.Add(1, new KeyValuePair<string, object?>("reason", "queue_full"));
            if (Volatile.Read(ref _stopping))
            {
                // A call that ends after the host stopped the audit writer: counted, but the writer is not behind.
                return;
            }

            if (Interlocked.Increment(ref _droppedSinceWarning) == 1)
            {
                Log.Dropping(_logger);
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_sink is null)
        {
            return;
        }

        // Runs until the host stops and every queued line is written: StopAsync completes the channel.
        await foreach (var line in _lines.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            Write(line);
            Interlocked.Exchange(ref _droppedSinceWarning, 0);
        }
    }

    /// <summary>
    /// Writes one line, or drops and counts it. Whatever the file system does (a full disk, a directory where the
    /// rotated file must go, permissions), the writer keeps going: an exception escaping a BackgroundService stops
    /// the host, and the audit log is not worth the proxy. Logged once per run of failures, not once per line.
    /// </summary>
    private void Write(byte[] line)
    {
        try
        {
            _sink!.Write(line);
            if (!_lines.Reader.TryPeek(out _))
            {
                _sink.Flush();
            }

            if (_writeError is not null)
            {
                _writeError = null;
                Log.AuditWriteRecovered(_logger);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _dropped.Add(1, new KeyValuePair<string, object?>("reason", "write_failed"));
            if (_writeError is null)
            {
                Log.AuditWriteFailed(_logger, e);
            }

            _writeError = $"{e.GetType().Name}: {e.Message}";
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref _stopping, true);
        _lines.Writer.TryComplete();
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _sink?.Flush();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or UnauthorizedAccessException)
        {
            Log.AuditWriteFailed(_logger, e);
        }
    }

    public override void Dispose()
    {
        _sink?.Dispose();
        base.Dispose();
    }

    internal byte[] Format(in AuditEntry entry)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("time", entry.Time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
            json.WriteString("identity", entry.Caller.Identity?.Name);
            json.WriteString("certificate", entry.Caller.Certificate.ToString());
            json.WriteString("peer", entry.Caller.Peer);
            json.WriteString("method", entry.Method);
            if (entry.Keys.Count > 0)
            {
                json.WriteStartArray("keys");
                foreach (var access in entry.Keys.Take(MaxKeysPerLine))
                {
                    WriteAccess(json, access);
                }

                json.WriteEndArray();
                if (entry.Keys.Count > MaxKeysPerLine)
                {
                    json.WriteNumber("keys_omitted", entry.Keys.Count - MaxKeysPerLine);
                }
            }

            json.WriteString("outcome", entry.Denied ? "denied" : "allowed");
            if (entry.Reason is not null)
            {
                json.WriteString("reason", entry.Reason);
            }

            json.WriteString("code", StatusCodeNames.Of(entry.Code));
            json.WriteNumber("latency_ms", Math.Round(entry.Latency.TotalMilliseconds, 3));
            json.WriteEndObject();
        }

        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    private void WriteAccess(Utf8JsonWriter json, KeyAccess access)
    {
        json.WriteStartObject();
        json.WriteString("op", access.Operation);
        json.WriteString("access", access.Permission switch
        {
            KeyPermission.Read => "read",
            KeyPermission.Write => "write",
            _ => "readwrite",
        });
        WriteKey(json, "key", access.Range.Start);
        if (!access.Range.IsSingleKey)
        {
            // etcd's own encoding of "no end": "\0".
            WriteKey(json, "range_end", access.Range.End ?? [0]);
        }

        json.WriteEndObject();
    }

    /// <summary>Keys as text when they are UTF-8 (almost always), as hex otherwise; as SHA-256 with --audit-hash-keys.</summary>
    private void WriteKey(Utf8JsonWriter json, string name, byte[] key)
    {
        if (_hashKeys)
        {
            json.WriteString(name + "_sha256", KeyRedaction.Sha256Hex(key));
        }
        else if (System.Text.Unicode.Utf8.IsValid(key))
        {
            json.WriteString(name, key);
        }
        else
        {
            json.WriteString(name + "_hex", Convert.ToHexStringLower(key));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.Dropping, EventName = nameof(EventIds.Dropping), Level = LogLevel.Error, Message = "The audit log cannot keep up; records are being dropped (see etcdshield_audit_dropped)")]
        public static partial void Dropping(ILogger logger);

        [LoggerMessage(EventId = EventIds.AuditWriteFailed, EventName = nameof(EventIds.AuditWriteFailed), Level = LogLevel.Error, Message = "Could not write the audit log; records are dropped (see etcdshield_audit_dropped, reason write_failed) until it can be written again")]
        public static partial void AuditWriteFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = EventIds.AuditWriteRecovered, EventName = nameof(EventIds.AuditWriteRecovered), Level = LogLevel.Information, Message = "The audit log is written again")]
        public static partial void AuditWriteRecovered(ILogger logger);
    }
}
