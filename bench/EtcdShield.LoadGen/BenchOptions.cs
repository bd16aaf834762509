using System.Globalization;
using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen;

/// <summary>
/// The command line. --quick and --full are presets (quick: one round, 1 KiB, seconds per workload, under three
/// minutes with everything else; full: three rounds, every size); any other flag overrides its preset value.
/// </summary>
internal sealed record BenchOptions
{
    /// <summary>"quick" or "full" when given; "default" otherwise: quick presets for the unary workloads, full size for the streaming ones.</summary>
    public string Mode { get; init; } = "default";

    public string? OutputDirectory { get; init; }

    public string? ShieldDll { get; init; }

    /// <summary>
    /// Builds the start-up scenario measures next to the JIT build, by name: "published" is deploy/publish.sh's
    /// program (--shield-published), others come from --shield-build NAME=PATH (a Native AOT trial, say).
    /// </summary>
    public IReadOnlyList<ShieldBuild> ShieldBuilds { get; init; } = [];

    /// <summary>Added to every EtcdShield start (DOTNET_* knobs under test); empty normally, and the report lists it.</summary>
    public IReadOnlyDictionary<string, string> ShieldEnvironment { get; init; } = new Dictionary<string, string>();

    /// <summary>Added to every EtcdShield start's command line (--shield-args), after the bench's own flags; empty normally.</summary>
    public IReadOnlyList<string> ShieldArguments { get; init; } = [];

    /// <summary>Named EtcdShield configurations (--shield-variant) that --targets runs as rows of their own (shield-encrypted+NAME).</summary>
    public IReadOnlyList<ShieldVariant> ShieldVariants { get; init; } = [];

    public string? DataRoot { get; init; }

    public string? MicrobenchJson { get; init; }

    public string? Command { get; init; }

    /// <summary>The kinds in --targets, each once: what the snapshot, keep-alive, gateway and startup scenarios run.</summary>
    public IReadOnlyList<TargetKind> Targets { get; init; } = Enum.GetValues<TargetKind>();

    /// <summary>The rows of the unary workloads (watch included), variants as rows of their own, in --targets order.</summary>
    public IReadOnlyList<BenchTarget> UnaryTargets { get; init; } = [.. Enum.GetValues<TargetKind>().Select(k => new BenchTarget(k))];

    public IReadOnlyList<Scenario> Scenarios { get; init; } = [Scenario.Unary];

    public IReadOnlyList<WorkloadKind> Workloads { get; init; } = WorkloadKinds.Default;

    public IReadOnlyList<int> Sizes { get; init; } = [1024];

    public int Rounds { get; init; } = 1;

    /// <summary>Unmeasured load on every path before a target's first workload, so tiered JIT is done for all targets.</summary>
    public TimeSpan TargetWarmup { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>
    /// Warm-up that always runs before settling is checked: on a busy machine a JIT-ing proxy's CPU per operation
    /// can hold still for two slices and then fall again, so "settled" alone stopped a full run's warm-up at 9 s.
    /// </summary>
    public TimeSpan MinTargetWarmup { get; init; } = TimeSpan.Zero;

    public LoadSettings Load { get; init; } = new(64, 4, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(1), 1000, 1000, 10);

    /// <summary>Three warm snapshots per target: on a shared machine one of them is often a neighbour's burst, and the median is not.</summary>
    public SnapshotSettings Snapshot { get; init; } = new(SnapshotSettings.DefaultBytes, 3);

    public KeepAliveSettings KeepAlive { get; init; } = new(
        1000, 5000, [1, 10], TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(15));

    /// <summary>Default: 5 s idle, 70 s of load of which the last 10 s are the steady state (quick: 30 s, full: 90 s).</summary>
    public StartupSettings Startup { get; init; } = new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(70), TimeSpan.FromSeconds(10), WorkloadKind.RangeLinearizable);

    public const string Usage = """
        EtcdShield.LoadGen run [--quick | --full] [options]

          --quick | --full         preset (quick: 1 round, 1 KiB, 0.5 s warm-up + 1 s; full: 3 rounds, 256 B/1 KiB/16 KiB, 2 s + 6 s)
          --out DIR                where results.md, results.json, chart.svg and logs go (default bench/out/<timestamp>)
          --shield-dll PATH        the built proxy (default src/EtcdShield/bin/Release/net10.0/EtcdShield.dll)
          --targets a,b            etcd, etcd-mtls, grpc-proxy, shield-plain, shield-encrypted (default all); a shield
                                   target may be named once more as shield-encrypted+NAME, a --shield-variant of it
          --workloads a,b          put, range-lin, range-ser, txn-cas, mixed, watch, watch-keys, and the hostile-input
                                   rows txn-compares, txn-puts, range-by-value (default all but watch-keys)
          --sizes 256,1024,16384   value sizes in bytes
          --clients N              concurrent closed-loop clients (default 64)
          --connections N          gRPC connections they share (default 4)
          --warmup S --duration S  seconds per workload
          --rounds N               rounds; targets are interleaved within each round
          --target-warmup S        at most this much unmeasured load after a target starts, until its CPU/op settles (quick 8, full 90)
          --min-target-warmup S    at least this much before settling counts (quick 0, full 40)
          --keys N                 keys per value size (default 1000)
          --watchers N             watchers in the watch workloads (default 1000), each its own Watch stream, spread
                                   round robin over --connections, opened in batches of 500
          --watch-rate N           events per second each watcher gets (default 10; may be a fraction, 0.5): watch puts N/s under the prefix
                                   (10,000 events/s with 1000 watchers), watch-keys N/s to each watcher's own key
                                   (watchers x N puts/s); keep watchers x N within what 2 cores deliver (10,000 watchers: 1)
          --scenario a,b           unary (the workloads above), snapshot, keepalive, gateway (default unary); gateway is JSON
                                   put and range over HTTP/1.1 with --clients connections, --sizes, --warmup/--duration
          --scenario startup       exec to first answer, first 10 s under load vs steady, RSS idle and under load, per target:
                                   etcd-mtls (etcd itself), grpc-proxy, shield-* once per build (--shield-dll, --shield-published)
          --shield-published PATH  deploy/publish.sh's EtcdShield program (bench/run.sh publishes it for the startup scenario)
          --shield-build NAME=PATH[;K=V...]  another EtcdShield build (dll or program) for the startup scenario, with
                                   environment variables of its own (repeatable; e.g. "nopgo=out/bench-published/EtcdShield;DOTNET_TieredPGO=0")
          --shield-env K=V         an environment variable for every EtcdShield start (repeatable; e.g. DOTNET_TieredPGO=0)
          --shield-args "FLAGS"    extra proxy flags for every EtcdShield start (repeatable; split on spaces)
          --shield-variant "NAME=FLAGS[;K=V...]"  a named EtcdShield configuration, run as the row shield-encrypted+NAME
                                   (or shield-plain+NAME) when --targets names it: its flags after the bench's, its
                                   variables added (repeatable; e.g. "nosharing=--watch-sharing=false",
                                   "gen0=;DOTNET_GCgen0size=0x400000"); unary workloads only
          --startup-idle S         seconds a started target sits without load before its idle RSS is read (default 5)
          --startup-load S         seconds of load from the first answer (default 70; quick 30; full 90), the last 10 steady
          --startup-workload W     the closed-loop request of the startup scenario (default range-lin)
          --snapshot-bytes N       database size the snapshot scenario fills etcd to, e.g. 1GiB, 64MiB (default 1GiB; explicit --quick 64MiB)
          --warm-snapshots N       snapshots per target after the first (cold) one (default 3; explicit --quick 1)
          --leases N               leases the keep-alive scenario keeps alive (default 1000)
          --keepalive-rate N       keep-alive messages per second, over all streams (default 5000)
          --keepalive-streams 1,10 LeaseKeepAlive stream counts, one measured row each (default 1,10)
          --keepalive-target-warmup S  unmeasured keep-alive load after a target starts (default 10; explicit --quick 2)
          --keepalive-warmup S --keepalive-duration S  seconds per row (default 2 + 15; explicit --quick 1 + 5)
          --data-root DIR          where etcd data directories go (default /dev/shm when present)
          --microbench FILE        microbench.json from EtcdShield.Bench, to include in the report
          --command TEXT           the command to record in the report (bench/run.sh passes its own)
        """;

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = args.Contains("--full") ? Full() : args.Contains("--quick") ? Quick() : new BenchOptions();
        var load = options.Load;
        var keepAlive = options.KeepAlive;
        for (var i = 0; i < args.Count; i++)
        {
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int NextInt() => int.Parse(Next(), CultureInfo.InvariantCulture);
            TimeSpan NextSeconds() => TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture));
            string[] NextList() => Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

            options = args[i] switch
            {
                "run" or "--quick" or "--full" => options,
                "--out" => options with { OutputDirectory = Next() },
                "--shield-dll" => options with { ShieldDll = Next() },
                "--shield-published" => options with { ShieldBuilds = [.. options.ShieldBuilds, new ShieldBuild("published", Next(), new Dictionary<string, string>())] },
                "--shield-build" => options with { ShieldBuilds = [.. options.ShieldBuilds, ParseBuild(Next())] },
                "--shield-env" => options with { ShieldEnvironment = WithVariable(options.ShieldEnvironment, Next()) },
                "--shield-args" => options with { ShieldArguments = [.. options.ShieldArguments, .. SplitFlags(Next())] },
                "--shield-variant" => options with { ShieldVariants = [.. options.ShieldVariants, ParseVariant(Next())] },
                "--startup-idle" => options with { Startup = options.Startup with { Idle = NextSeconds() } },
                "--startup-load" => options with { Startup = options.Startup with { Load = NextSeconds() } },
                "--startup-workload" => options with { Startup = options.Startup with { Workload = WorkloadKinds.Parse(Next()) } },
                "--data-root" => options with { DataRoot = Next() },
                "--microbench" => options with { MicrobenchJson = Next() },
                "--command" => options with { Command = Next() },
                "--targets" => WithTargets(options, [.. NextList().Select(BenchTarget.Parse).Distinct()]),
                "--scenario" => options with { Scenarios = [.. NextList().Select(EtcdShield.LoadGen.Load.Scenarios.Parse).Distinct()] },
                "--snapshot-bytes" => options with { Snapshot = options.Snapshot with { DatabaseBytes = ParseBytes(Next()) } },
                "--warm-snapshots" => options with { Snapshot = options.Snapshot with { WarmSnapshots = NextInt() } },
                "--leases" => options with { KeepAlive = keepAlive = keepAlive with { Leases = NextInt() } },
                "--keepalive-rate" => options with { KeepAlive = keepAlive = keepAlive with { MessagesPerSecond = NextInt() } },
                "--keepalive-streams" => options with { KeepAlive = keepAlive = keepAlive with { StreamCounts = [.. NextList().Select(s => int.Parse(s, CultureInfo.InvariantCulture))] } },
                "--keepalive-target-warmup" => options with { KeepAlive = keepAlive = keepAlive with { TargetWarmup = NextSeconds() } },
                "--keepalive-warmup" => options with { KeepAlive = keepAlive = keepAlive with { Warmup = NextSeconds() } },
                "--keepalive-duration" => options with { KeepAlive = keepAlive = keepAlive with { Duration = NextSeconds() } },
                "--workloads" => options with { Workloads = [.. NextList().Select(WorkloadKinds.Parse)] },
                "--sizes" => options with { Sizes = [.. NextList().Select(s => int.Parse(s, CultureInfo.InvariantCulture))] },
                "--rounds" => options with { Rounds = NextInt() },
                "--target-warmup" => options with { TargetWarmup = NextSeconds() },
                "--min-target-warmup" => options with { MinTargetWarmup = NextSeconds() },
                "--clients" => options with { Load = load = load with { Clients = NextInt() } },
                "--connections" => options with { Load = load = load with { Connections = NextInt() } },
                "--warmup" => options with { Load = load = load with { Warmup = NextSeconds() } },
                "--duration" => options with { Load = load = load with { Duration = NextSeconds() } },
                "--keys" => options with { Load = load = load with { Keys = NextInt() } },
                "--watchers" => options with { Load = load = load with { Watchers = NextInt() } },
                "--watch-rate" => options with { Load = load = load with { WatchPutsPerSecond = double.Parse(Next(), CultureInfo.InvariantCulture) } },
                _ => throw new ArgumentException($"unknown argument '{args[i]}'"),
            };
        }

        if (load.Clients < 1 || load.Connections < 1 || load.Keys < 1 || load.Watchers < 1 || !(load.WatchPutsPerSecond > 0) || options.Rounds < 1)
        {
            throw new ArgumentException("clients, connections, keys, watchers and rounds must be at least 1, watch-rate above 0");
        }

        foreach (var target in options.UnaryTargets.Where(t => t.Variant is not null && options.ShieldVariants.All(v => v.Name != t.Variant)))
        {
            throw new ArgumentException($"--targets names {target.Id}, but no --shield-variant \"{target.Variant}=FLAGS\" defines it");
        }

        foreach (var variant in options.ShieldVariants.Where(v => options.UnaryTargets.All(t => t.Variant != v.Name)))
        {
            throw new ArgumentException($"--shield-variant {variant.Name} is not run: add shield-encrypted+{variant.Name} (or shield-plain+{variant.Name}) to --targets");
        }

        if (options.ShieldVariants.Select(v => v.Name).Distinct().Count() != options.ShieldVariants.Count)
        {
            throw new ArgumentException("each --shield-variant needs a name of its own");
        }

        if (options.Sizes.Any(s => s < 8))
        {
            throw new ArgumentException("value sizes must be at least 8 bytes (the watch workload carries a timestamp)");
        }

        if (options.Scenarios.Count == 0)
        {
            throw new ArgumentException("--scenario needs at least one of unary, snapshot, keepalive, gateway");
        }

        if (options.Snapshot.DatabaseBytes is < 1 << 20 or > SnapshotSettings.MaxBytes || options.Snapshot.WarmSnapshots < 0)
        {
            throw new ArgumentException($"snapshot-bytes must be between 1MiB and {SnapshotSettings.MaxBytes >> 30}GiB (etcd's quota is 8 GiB), warm-snapshots at least 0");
        }

        if (keepAlive.Leases < 1 || keepAlive.MessagesPerSecond < 1 || keepAlive.StreamCounts.Count == 0 || keepAlive.StreamCounts.Any(k => k < 1 || k > keepAlive.Leases)
            || keepAlive.Duration <= TimeSpan.Zero)
        {
            throw new ArgumentException("leases, keepalive-rate and keepalive-duration must be positive, and each keepalive-streams count between 1 and the leases");
        }

        if (options.Startup.Load.TotalSeconds < StartupSettings.ColdSeconds + options.Startup.Steady.TotalSeconds
            || options.Startup.Idle < TimeSpan.Zero || options.Startup.Workload.IsWatch())
        {
            throw new ArgumentException($"startup-load must be at least {StartupSettings.ColdSeconds + options.Startup.Steady.TotalSeconds:0} s (the first 10 s and the steady 10 s), startup-idle not negative, startup-workload a closed-loop one");
        }

        return options;
    }

    private static Dictionary<string, string> WithVariable(IReadOnlyDictionary<string, string> environment, string assignment)
    {
        var (name, value) = Split(assignment, "--shield-env");
        return new Dictionary<string, string>(environment) { [name] = value };
    }

    private static BenchOptions WithTargets(BenchOptions options, IReadOnlyList<BenchTarget> targets) =>
        options with { UnaryTargets = targets, Targets = [.. targets.Select(t => t.Kind).Distinct()] };

    private static string[] SplitFlags(string text) => text.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// "NAME=FLAGS" or "NAME=FLAGS;K=V;K=V" (FLAGS may be empty: a variant of environment variables only). The name
    /// is what precedes the first '=', so it cannot start with '-': "--watch-sharing=false" alone is a mistake, not a name.
    /// </summary>
    private static ShieldVariant ParseVariant(string text)
    {
        var parts = text.Split(';');
        var (name, flags) = Split(parts[0], "--shield-variant");
        if (name.StartsWith('-') || name.Contains('+', StringComparison.Ordinal) || name.Contains(',', StringComparison.Ordinal))
        {
            throw new ArgumentException($"--shield-variant takes NAME=FLAGS[;K=V...] with a name first (no '-' at its start, no '+' or ','), not '{text}'");
        }

        var environment = new Dictionary<string, string>();
        foreach (var assignment in parts.Skip(1).Where(p => p.Length > 0))
        {
            var (key, value) = Split(assignment, "--shield-variant");
            environment[key] = value;
        }

        return new ShieldVariant(name, SplitFlags(flags), environment);
    }

    /// <summary>"NAME=PATH" or "NAME=PATH;K=V;K=V" (environment variables for that build only).</summary>
    private static ShieldBuild ParseBuild(string text)
    {
        var parts = text.Split(';', StringSplitOptions.RemoveEmptyEntries);
        var (name, path) = Split(parts[0], "--shield-build");
        var environment = new Dictionary<string, string>();
        foreach (var assignment in parts.Skip(1))
        {
            var (key, value) = Split(assignment, "--shield-build");
            environment[key] = value;
        }

        return new ShieldBuild(name, path, environment);
    }

    private static (string Name, string Value) Split(string assignment, string flag)
    {
        var equals = assignment.IndexOf('=', StringComparison.Ordinal);
        return equals < 1 ? throw new ArgumentException($"{flag} takes NAME=VALUE, not '{assignment}'") : (assignment[..equals], assignment[(equals + 1)..]);
    }

    /// <summary>"1073741824", "1GiB", "64MiB", "512KiB".</summary>
    private static long ParseBytes(string text)
    {
        foreach (var (suffix, shift) in new[] { ("GiB", 30), ("MiB", 20), ("KiB", 10) })
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                return long.Parse(text[..^suffix.Length], CultureInfo.InvariantCulture) << shift;
            }
        }

        return long.Parse(text, CultureInfo.InvariantCulture);
    }

    private static BenchOptions Quick() => new()
    {
        Mode = "quick",
        Startup = new BenchOptions().Startup with { Load = TimeSpan.FromSeconds(30) },
        Snapshot = new SnapshotSettings(64L << 20, 1),
        KeepAlive = new BenchOptions().KeepAlive with
        {
            TargetWarmup = TimeSpan.FromSeconds(2),
            Warmup = TimeSpan.FromSeconds(1),
            Duration = TimeSpan.FromSeconds(5),
        },
    };

    private static BenchOptions Full() => new()
    {
        Mode = "full",
        Startup = new BenchOptions().Startup with { Load = TimeSpan.FromSeconds(90) },
        Sizes = [256, 1024, 16384],
        Rounds = 3,
        TargetWarmup = TimeSpan.FromSeconds(90),
        MinTargetWarmup = TimeSpan.FromSeconds(40),
        Load = new LoadSettings(64, 4, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(6), 1000, 1000, 10),
    };
}

/// <summary>An EtcdShield build the start-up scenario measures: its report name, the dll or program, its own environment.</summary>
internal sealed record ShieldBuild(string Name, string Path, IReadOnlyDictionary<string, string> Environment);
