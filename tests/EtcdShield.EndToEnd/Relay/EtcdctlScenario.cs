using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// What an operator or a script does with etcdctl, in one sequence that always gives the same output on a
/// fresh single-member etcd: the KV commands with their flags, transactions, watches, leases, locks,
/// elections, cluster and maintenance commands, authentication, and the errors etcd answers with.
/// </summary>
/// <remarks>
/// Values that later commands need (a lease ID, a revision) are read from earlier output, so the same code
/// runs unchanged against any server. Long-running commands are stopped on an event the scenario itself
/// caused (a sentinel value printed), never after a pause.
/// </remarks>
internal static partial class EtcdctlScenario
{
    private static readonly TimeSpan StopDeadline = TimeSpan.FromSeconds(15);

    public static async Task RunAsync(ScenarioRun run)
    {
        var first = await KeyValuesAsync(run);
        await TransactionsAsync(run);
        await WatchesAsync(run);
        await LeasesAsync(run);
        await LocksAndElectionsAsync(run);
        await ClusterAndMaintenanceAsync(run, first);
        await AuthenticationAsync(run);
    }

    /// <returns>The revision of the first write, for reads and watches of history later on.</returns>
    private static async Task<long> KeyValuesAsync(ScenarioRun run)
    {
        var first = Revision(await run.RunAsync("put", "p/a", "1", "-w", "json"));
        await run.RunAsync("put", "p/b", "3");
        await run.RunAsync("put", "p/c", "2");
        await run.RunAsync("put", "p/d", "3");
        await run.RunAsync("put", "p/e", "");
        await run.RunAsync("put", "q/x", "9");
        await run.RunAsync("put", "p/a", "10", "--prev-kv");
        await run.RunAsync("put", "p/b", "--ignore-value");
        await run.RunAsync(["put", "p/big"], new string('x', 1_700_000));

        await run.RunAsync("get", "p/a");
        await run.RunAsync("get", "p/a", "--rev=" + first.ToString(CultureInfo.InvariantCulture));
        await run.RunAsync("get", "p/a", "--rev=100000");
        await run.RunAsync("get", "p/nothing");
        await run.RunAsync("get", "p/", "--prefix");
        await run.RunAsync("get", "p/", "--prefix", "--limit=2");
        await run.RunAsync("get", "p/", "--prefix", "--keys-only");
        await run.RunAsync("get", "p/", "--prefix", "--print-value-only");
        await run.RunAsync("get", "p/", "--prefix", "--hex");
        await run.RunAsync("get", "p/", "--prefix", "--consistency=s");
        await run.RunAsync("get", "p/c", "--from-key");
        await run.RunAsync("get", "p/c", "p/e");
        await run.RunAsync("get", "p/", "--prefix", "-w", "json");
        await run.RunAsync("get", "p/", "--prefix", "--limit=1", "-w", "json");
        await run.RunAsync("get", "p/", "--prefix", "--keys-only", "--limit=3", "-w", "json");
        await run.RunAsync("get", "p/a", "-w", "fields");
        await run.RunAsync("get", "p/", "--prefix", "-w", "table");
        foreach (var target in (string[])["KEY", "VALUE", "CREATE", "MODIFY", "VERSION"])
        {
            foreach (var order in (string[])["ASCEND", "DESCEND"])
            {
                await run.RunAsync("get", "p/", "--prefix", "--sort-by=" + target, "--order=" + order);
            }
        }

        // A value sort with a limit (the proxy sorts decrypted values and applies the limit itself).
        await run.RunAsync("get", "p/", "--prefix", "--sort-by=VALUE", "--order=DESCEND", "--limit=2", "-w", "json");
        await run.RunAsync("get", "p/", "--prefix", "--sort-by=VALUE", "--order=ASCEND", "--keys-only", "--limit=3");

        await run.RunAsync("del", "p/nothing");
        await run.RunAsync("del", "p/e", "--prev-kv");
        await run.RunAsync("del", "q/", "--prefix", "--prev-kv");
        await run.RunAsync("del", "p/big");
        return first;
    }

    private static async Task TransactionsAsync(ScenarioRun run)
    {
        // Every section ends with a blank line, the last one too (etcdctl 3.4 reads "Error: EOF" otherwise).
        await run.RunAsync(["txn"], Txn(["value(\"p/a\") = \"10\"", "mod(\"p/b\") > \"0\""], ["put t/1 yes", "get p/a"], ["put t/1 no"]));
        await run.RunAsync(["txn"], Txn(["value(\"p/a\") = \"nope\""], ["put t/2 yes"], ["put t/2 no --prev-kv", "get t/ --prefix"]));
        await run.RunAsync(["txn"], Txn(["value(\"p/b\") > \"2\"", "value(\"p/c\") < \"3\""], ["get p/ --prefix --limit=2", "del p/c --prev-kv", "put p/n new --prev-kv"], []));
        await run.RunAsync(["txn"], Txn(["value(\"p/b\") != \"3\""], ["put t/3 unexpected"], ["get p/b"]));
        await run.RunAsync(["txn"], Txn(["version(\"p/a\") = \"2\"", "create(\"p/b\") > \"0\""], ["put t/4 v", "del t/1"], ["get t/4"]));
        await run.RunAsync(["txn"], Txn(["create(\"t/none\") = \"0\""], ["put t/none created"], []));
        await run.RunAsync(["txn"], Txn([], ["put t/5 a", "put t/6 b", "get t/ --prefix"], []));
        await run.RunAsync(["txn", "-w", "json"], Txn(["mod(\"p/a\") > \"100000\""], ["put t/7 x"], ["get t/5", "put t/7 y --prev-kv"]));
        await run.RunAsync(["txn", "-w", "json"], Txn(["value(\"t/7\") = \"y\""], ["get t/7", "del t/7 --prev-kv"], []));

        // Refused by etcd: the error texts must come through unchanged.
        await run.RunAsync(["txn"], Txn([], ["put t/dup 1", "put t/dup 2"], []));
        await run.RunAsync(["txn"], Txn(["value(\"p/a\") = \"10\""], ["put t/dup 1", "del t/dup"], []));
        await run.RunAsync(["txn"], Txn([], Enumerable.Range(0, 129).Select(i => $"put t/many{i} v").ToArray(), []));
        await run.RunAsync("get", "t/", "--prefix");
    }

    private static async Task WatchesAsync(ScenarioRun run)
    {
        var start = Revision(await run.RunAsync("put", "w/1", "a", "-w", "json"));
        await run.RunAsync("put", "w/2", "b");
        await run.RunAsync("put", "w/1", "c");
        await run.RunAsync("del", "w/2");
        await run.RunAsync("put", "w/end", "done");
        var from = "--rev=" + start.ToString(CultureInfo.InvariantCulture);

        // History up to the sentinel: every event is there, in order, once the sentinel is.
        await run.RunUntilAsync("done", "watch", "w/", "--prefix", from);
        await run.RunUntilAsync("done", "watch", "w/", "--prefix", "--prev-kv", from);
        await run.RunUntilAsync("c", "watch", "w/1", from);
        await run.RunUntilAsync("done", "watch", "w/2", "w/z", from);
        // JSON events carry values in base64: "ZG9uZQ==" is "done".
        await run.RunUntilAsync(line => line.Contains("\"ZG9uZQ==\"", StringComparison.Ordinal), "watch", "w/", "--prefix", "-w", "json", from);

        // Live events: the watch starts at the next revision, so writes made before it is established are
        // delivered as well as those after, and the output does not depend on who wins that race.
        var next = Revision(await run.RunAsync("get", "w/end", "-w", "json")) + 1;
        await using var live = run.Start("watch", "live/", "--prefix", "--prev-kv", "--rev=" + next.ToString(CultureInfo.InvariantCulture));
        await run.RunAsync("put", "live/1", "x");
        await run.RunAsync("put", "live/1", "y");
        await run.RunAsync("del", "live/1");
        await run.RunAsync("put", "live/end", "done");
        await live.WaitForStdOutAsync(line => line == "done", StopDeadline);
        run.Record(["watch", "live/", "--prefix", "--prev-kv", "--rev=<next>"], null, await live.KillAsync(), StepOptions.KilledByTest);
    }

    private static async Task LeasesAsync(ScenarioRun run)
    {
        var granted = await run.RunAsync("lease", "grant", "600");
        var lease = LeaseGranted().Match(granted.StdOut) is { Success: true } m
            ? m.Groups[1].Value
            : throw new InvalidOperationException($"No lease was granted: {granted}");

        await run.RunAsync("put", "l/1", "v1", "--lease=" + lease);
        await run.RunAsync("put", "l/2", "v2", "--lease=" + lease);
        await run.RunAsync("lease", "timetolive", lease);
        await run.RunAsync("lease", "timetolive", lease, "--keys");
        await run.RunAsync("lease", "keep-alive", "--once", lease);
        await run.RunSortedAsync("lease", "list");
        await run.RunAsync("lease", "grant", "600", "-w", "json");
        await run.RunAsync("put", "l/1", "v1b", "--ignore-lease");
        await run.RunAsync("get", "l/", "--prefix", "-w", "json");
        await run.RunAsync("lease", "revoke", lease);
        await run.RunAsync("get", "l/", "--prefix");
        await run.RunAsync("lease", "timetolive", lease);
        await run.RunAsync("lease", "revoke", lease);
        await run.RunAsync("lease", "keep-alive", "--once", lease);
        await run.RunAsync("put", "l/3", "v", "--lease=1234abcd");
    }

    private static async Task LocksAndElectionsAsync(ScenarioRun run)
    {
        // `lock NAME -- COMMAND` holds the lock while the command runs and releases it afterwards.
        await run.RunAsync("lock", "lk", "--", "echo", "hi");
        await run.RunAsync("lock", "lk", "--", "sh", "-c", "echo holding $ETCD_LOCK_KEY; exit 3");
        await run.RunAsync("get", "lk", "--prefix");

        // Two campaigners and a listener. Beta may campaign before or after alpha resigns; either way it is
        // elected next, so the output does not depend on that race.
        await using var alpha = run.Start("elect", "el", "alpha");
        await alpha.WaitForStdOutAsync(line => line == "alpha", StopDeadline);
        await using var listener = run.Start("elect", "-l", "el");
        await listener.WaitForStdOutAsync(line => line == "alpha", StopDeadline);
        await using var beta = run.Start("elect", "el", "beta");
        run.Record(["elect", "el", "alpha"], null, await alpha.TerminateAsync(StopDeadline));
        await beta.WaitForStdOutAsync(line => line == "beta", StopDeadline);
        await listener.WaitForStdOutAsync(line => line == "beta", StopDeadline);
        run.Record(["elect", "-l", "el"], null, await listener.KillAsync(), StepOptions.KilledByTest);
        await run.RunAsync("get", "el", "--prefix", "--print-value-only");
        run.Record(["elect", "el", "beta"], null, await beta.TerminateAsync(StopDeadline));
        await run.RunAsync("get", "el", "--prefix");
    }

    private static async Task ClusterAndMaintenanceAsync(ScenarioRun run, long firstRevision)
    {
        await run.RunAsync("endpoint", "status");
        await run.RunAsync("endpoint", "status", "-w", "json");
        await run.RunAsync("endpoint", "health");
        await run.RunAsync("endpoint", "health", "-w", "json");
        await run.RunAsync("endpoint", "hashkv");
        await run.RunAsync("member", "list");
        await run.RunAsync("member", "list", "-w", "json");
        await run.RunAsync("alarm", "list");

        // A learner that never starts: added, listed, refused promotion, updated and removed.
        var added = await run.RunAsync("member", "add", "learner1", "--peer-urls=http://127.0.0.1:1", "--learner");
        var learner = MemberAdded().Match(added.StdOut) is { Success: true } m
            ? m.Groups[1].Value
            : throw new InvalidOperationException($"No member was added: {added}");
        await run.RunSortedAsync("member", "list");
        await run.RunAsync("member", "promote", learner);
        await run.RunAsync("member", "update", learner, "--peer-urls=http://127.0.0.1:2");
        await run.RunAsync("member", "remove", learner);
        await run.RunAsync("member", "remove", learner);
        await run.RunAsync("move-leader", "1234abcd");

        var snapshot = Path.Combine(run.Directory, "snapshot.db");
        await run.RunAsync("snapshot", "save", snapshot);
        await run.RunAsync("snapshot", "status", snapshot);
        await run.RunAsync("snapshot", "status", snapshot, "-w", "json");

        var before = Revision(await run.RunAsync("put", "c/1", "before", "-w", "json"));
        await run.RunAsync("put", "c/1", "after");
        var compactAt = before.ToString(CultureInfo.InvariantCulture);
        await run.RunAsync("compaction", compactAt);
        await run.RunAsync("get", "p/a", "--rev=" + firstRevision.ToString(CultureInfo.InvariantCulture));
        await run.RunAsync("get", "c/1", "--rev=" + compactAt);
        await run.RunAsync("compaction", compactAt);

        // A watch from before the compaction is cancelled by etcd and etcdctl exits on its own.
        await run.RunAsync("watch", "p/", "--prefix", "--rev=" + firstRevision.ToString(CultureInfo.InvariantCulture));
        await run.RunAsync("compaction", "--physical", (before + 1).ToString(CultureInfo.InvariantCulture));
        await run.RunAsync("defrag");
        await run.RunAsync("get", "c/1");
    }

    private static async Task AuthenticationAsync(ScenarioRun run)
    {
        await run.RunAsync("user", "add", "root", "--new-user-password=rootpw");
        await run.RunAsync("user", "grant-role", "root", "root");
        await run.RunAsync("role", "add", "reader");
        await run.RunAsync("role", "grant-permission", "reader", "read", "auth/", "--prefix");
        await run.RunAsync("user", "add", "alice", "--new-user-password=alicepw");
        await run.RunAsync("user", "grant-role", "alice", "reader");
        await run.RunAsync("auth", "enable");
        await run.RunAsync("put", "auth/a", "1");
        await run.RunAsync("--user=root:rootpw", "put", "auth/a", "1");
        await run.RunAsync("--user=alice:alicepw", "get", "auth/a");
        await run.RunAsync("--user=alice:alicepw", "put", "auth/a", "2");
        await run.RunAsync("--user=alice:wrong", "get", "auth/a");
        await run.RunAsync(["--user=alice:alicepw", "txn"], Txn(["value(\"auth/a\") = \"1\""], ["get auth/a"], []));
        await run.RunAsync("--user=root:rootpw", "user", "list");
        await run.RunAsync("--user=root:rootpw", "role", "get", "reader");
        await run.RunAsync("--user=root:rootpw", "user", "get", "alice");
        await run.RunAsync("--user=root:rootpw", "auth", "disable");
        await run.RunAsync("role", "list");
        await run.RunAsync("get", "auth/a");
    }

    /// <summary>etcdctl txn's stdin: compares, success ops, failure ops, each section ended by a blank line.</summary>
    private static string Txn(string[] compares, string[] success, string[] failure)
    {
        var text = new StringBuilder();
        foreach (var section in (string[][])[compares, success, failure])
        {
            foreach (var line in section)
            {
                text.Append(line).Append('\n');
            }

            text.Append('\n');
        }

        return text.ToString();
    }

    /// <summary>The header revision of a command run with <c>-w json</c>.</summary>
    private static long Revision(CommandResult result)
    {
        try
        {
            using var json = JsonDocument.Parse(result.StdOut);
            return json.RootElement.GetProperty("header").GetProperty("revision").GetInt64();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidOperationException($"Expected a JSON answer with a header revision: {result}", e);
        }
    }

    [GeneratedRegex(@"^lease ([0-9a-f]+) granted", RegexOptions.Multiline)]
    private static partial Regex LeaseGranted();

    // "%16x": padded with spaces, not zeros.
    [GeneratedRegex(@"^Member +([0-9a-f]+) added", RegexOptions.Multiline)]
    private static partial Regex MemberAdded();
}
