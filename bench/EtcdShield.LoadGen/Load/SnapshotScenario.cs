using System.Diagnostics;
using System.Globalization;
using EtcdShield.LoadGen.Infrastructure;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// Snapshot throughput: one etcd filled once per run with incompressible values written directly into it, then,
/// round after round, each target started in front of it and Maintenance.Snapshot streamed through it to the load
/// generator, which counts the bytes (checking them against etcd's db size) and discards them. The first snapshot
/// after a target starts is its cold one; the warm ones after it are the throughput the goal is judged on.
/// </summary>
internal static class SnapshotScenario
{
    /// <summary>etcd ends a snapshot with the SHA-256 of the database as one more 32-byte blob.</summary>
    private const int ChecksumBytes = 32;

    private const int FillConcurrency = 8;

    private static readonly TimeSpan SnapshotDeadline = TimeSpan.FromMinutes(10);

    public static async Task<(SnapshotFill? Fill, List<SnapshotRun> Runs)> RunAsync(
        TargetLauncher launcher, BenchPki pki, IReadOnlyList<TargetKind> targets, int rounds, SnapshotSettings settings, string dataRoot)
    {
        var runs = new List<SnapshotRun>();
        EnsureRoom(dataRoot, settings.DatabaseBytes);
        using var etcd = await launcher.StartSharedEtcdAsync("snapshot-etcd").ConfigureAwait(false);
        using var direct = EtcdConnections.Open(etcd.Plaintext, 2, pki);
        using (var connect = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            await direct.ConnectAsync(connect.Token).ConfigureAwait(false);
        }

        var fill = await FillAsync(etcd, direct, settings.DatabaseBytes).ConfigureAwait(false);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  snapshot db: {fill.DatabaseBytes / 1048576.0:0} MiB in {fill.Puts} puts of {fill.ValueBytes} B ({fill.Concurrency} in flight), filled in {fill.Seconds:0.0} s"));

        for (var round = 1; round <= rounds; round++)
        {
            foreach (var kind in BenchmarkSession.Rotate(targets, round - 1))
            {
                runs.AddRange(await RunTargetAsync(launcher, pki, etcd, direct, kind, round, settings).ConfigureAwait(false));
            }
        }

        return (fill, runs);
    }

    private static async Task<List<SnapshotRun>> RunTargetAsync(
        TargetLauncher launcher, BenchPki pki, SharedEtcd etcd, EtcdConnections direct, TargetKind kind, int round, SnapshotSettings settings)
    {
        var results = new List<SnapshotRun>();
        var tag = $"r{round}-snapshot-{kind.Id()}";
        try
        {
            using var target = await launcher.StartOnAsync(kind, tag, etcd).ConfigureAwait(false);
            using var connections = EtcdConnections.Open(target.Endpoint, 1, pki);
            using (var connect = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            {
                await connections.ConnectAsync(connect.Token).ConfigureAwait(false);
            }

            for (var sequence = 1; sequence <= 1 + settings.WarmSnapshots; sequence++)
            {
                var run = await SnapshotAsync(target, connections, direct, round, sequence).ConfigureAwait(false);
                Report(run);
                results.Add(run);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or RpcException or TimeoutException or OperationCanceledException or IOException or HttpRequestException)
        {
            Console.WriteLine($"bench: {tag} FAILED: {e.Message}");
            results.Add(new SnapshotRun { Round = round, Target = kind, Sequence = results.Count + 1, Failure = e.GetType().Name + ": " + e.Message.Split('\n')[0] });
        }

        return results;
    }

    private static async Task<SnapshotRun> SnapshotAsync(RunningTarget target, EtcdConnections connections, EtcdConnections direct, int round, int sequence)
    {
        var run = new SnapshotRun { Round = round, Target = target.Kind, Sequence = sequence };
        var status = await direct.Maintenance(0).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + LoadSettings.CallDeadline).ResponseAsync.ConfigureAwait(false);
        run.DatabaseBytes = status.DbSize;

        ResourceWindow.ResetPeaks(target);
        var window = ResourceWindow.Open(target);
        var started = Stopwatch.GetTimestamp();
        SnapshotChunk? first = null;
        SnapshotChunk? last = null;
        using (var call = connections.Invoker(0).AsyncServerStreamingCall(
            CountedSnapshot.Method, null, new CallOptions(deadline: DateTime.UtcNow + SnapshotDeadline), new SnapshotRequest()))
        {
            await foreach (var chunk in call.ResponseStream.ReadAllAsync().ConfigureAwait(false))
            {
                if (first is null)
                {
                    run.FirstByteSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                    first = chunk;
                }

                run.Bytes += chunk.BlobLength;
                run.Messages++;
                last = chunk;
            }
        }

        run.Seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        run.Resources = window.Close();

        // etcd sends the database in blobs whose remaining_bytes count down to 0, then the checksum: a relay that
        // dropped, repeated or resized a message shows here.
        var database = run.Bytes - ChecksumBytes;
        run.Failure = target.Failure
            ?? (first is not { } f || (long)f.RemainingBytes + f.BlobLength != run.DatabaseBytes || database != run.DatabaseBytes
                || last is not { RemainingBytes: 0, BlobLength: ChecksumBytes }
                ? string.Create(CultureInfo.InvariantCulture, $"received {run.Bytes} B in {run.Messages} messages (first remaining_bytes {first?.RemainingBytes}), etcd's db is {run.DatabaseBytes} B (+{ChecksumBytes} B checksum)")
                : null);
        return run;
    }

    /// <summary>Puts of random (incompressible) values just under etcd's request limit, several in flight, until the db holds <paramref name="bytes"/>.</summary>
    private static async Task<SnapshotFill> FillAsync(SharedEtcd etcd, EtcdConnections direct, long bytes)
    {
        var puts = (int)((bytes + SnapshotSettings.FillValueBytes - 1) / SnapshotSettings.FillValueBytes);
        var started = Stopwatch.GetTimestamp();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        ProcessSampler.ResetPeak(etcd.Process.Pid);
        await Task.WhenAll(Enumerable.Range(0, FillConcurrency).Select(w => Task.Run(async () =>
        {
            // One buffer per writer, new random bytes per put: the previous put has been answered, so sent, before
            // its buffer is overwritten.
            var value = new byte[SnapshotSettings.FillValueBytes];
            for (var k = w; k < puts; k += FillConcurrency)
            {
                Random.Shared.NextBytes(value);
                await direct.Kv(w).PutAsync(
                    new PutRequest
                    {
                        Key = ByteString.CopyFromUtf8("/registry/bench/snapshot/" + k.ToString("D8", CultureInfo.InvariantCulture)),
                        Value = UnsafeByteOperations.UnsafeWrap(value),
                    },
                    deadline: DateTime.UtcNow.AddSeconds(60),
                    cancellationToken: timeout.Token).ResponseAsync.ConfigureAwait(false);
            }
        }))).ConfigureAwait(false);

        // etcd answers a put once it is in the WAL and commits its bbolt batch up to 100 ms later; Status reports the
        // committed size, so the fill is done when that has reached the size asked for and stopped growing.
        var size = 0L;
        for (var settleUntil = Stopwatch.GetTimestamp() + ClosedLoopRunner.Ticks(TimeSpan.FromSeconds(30)); ;)
        {
            var status = await direct.Maintenance(0).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + LoadSettings.CallDeadline).ResponseAsync.ConfigureAwait(false);
            if ((status.DbSize >= bytes && status.DbSize == size) || Stopwatch.GetTimestamp() > settleUntil)
            {
                break;
            }

            size = status.DbSize;
            await Task.Delay(250).ConfigureAwait(false);
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return new SnapshotFill(size, puts, SnapshotSettings.FillValueBytes, FillConcurrency, seconds, ProcessSampler.PeakResidentBytes(etcd.Process.Pid) / 1048576.0);
    }

    /// <summary>The db and etcd's write-ahead log each hold the data once; refuse to start rather than fill the disk.</summary>
    private static void EnsureRoom(string dataRoot, long bytes)
    {
        var needed = (bytes * 5 / 2) + (256L << 20);
        var free = new DriveInfo(dataRoot).AvailableFreeSpace;
        if (free < needed)
        {
            throw new InvalidOperationException(string.Create(
                CultureInfo.InvariantCulture,
                $"a {bytes >> 20} MiB snapshot database needs about {needed >> 20} MiB free in {dataRoot} (db + etcd's WAL), {free >> 20} MiB are; use --data-root or a smaller --snapshot-bytes"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  snapshot: {free >> 20} MiB free in {dataRoot}, about {needed >> 20} MiB needed"));
    }

    private static void Report(SnapshotRun run)
    {
        var proxy = run.Resources.ProxyCpuSeconds is { } cpu
            ? $", proxy {cpu:0.00} CPU s, peak {run.Resources.ProxyPeakBytes / 1048576.0:0} MiB"
            : "";
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  r{run.Round} {run.Target.Id(),-16} snapshot #{run.Sequence}{(run.Cold ? " (cold)" : "       ")} {run.MegabytesPerSecond,7:0.0} MB/s  first byte {run.FirstByteSeconds * 1000,7:0.0} ms  {run.Seconds,6:0.00} s, etcd {run.Resources.EtcdCpuSeconds:0.00} CPU s{proxy}{(run.Failure is null ? "" : " FAILED: " + run.Failure)}"));
    }
}
