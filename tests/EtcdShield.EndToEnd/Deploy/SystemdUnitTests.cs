using System.Globalization;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// deploy/systemd as systemd reads it: `systemd-analyze verify` finds nothing to say about etcdshield.service and
/// Debian's etcd.service with the drop-in (it exits 0 even on unknown keys, so its stderr decides), and
/// `systemd-analyze security` rates the proxy's exposure at most 2.0.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed partial class SystemdUnitTests
{
    private const string SystemdAnalyze = "/usr/bin/systemd-analyze";

    [Fact]
    public async Task Systemd_analyze_verify_prints_nothing_for_the_unit_and_for_etcd_with_the_drop_in()
    {
        using var root = new UnitRoot();
        root.Install("etcdshield.service", File.ReadAllText(DeployFiles.ShieldUnit));
        root.Install("etcd.service.d/etcdshield.conf", File.ReadAllText(DeployFiles.EtcdDropIn));

        var verified = await root.VerifyAsync("etcdshield.service", "etcd.service");

        // The same check, with one misspelt key in the drop-in, does complain: an empty stderr means something.
        root.Install("etcd.service.d/etcdshield.conf", File.ReadAllText(DeployFiles.EtcdDropIn) + "WorkingDirectroy=/run/etcd\n");
        var misspelt = await root.VerifyAsync("etcdshield.service", "etcd.service");

        Assert.True(verified.Succeeded, verified.ToString());
        Assert.Equal("", verified.StdErr);
        Assert.Contains("Unknown key", misspelt.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Systemd_analyze_security_rates_the_unit_exposure_at_most_2()
    {
        var rated = await ExternalCommand.RunAsync(SystemdAnalyze, ["security", "--offline=true", "--no-pager", DeployFiles.ShieldUnit]);

        var overall = OverallExposure().Match(rated.StdOut);
        Assert.True(overall.Success, rated.ToString());
        Assert.InRange(double.Parse(overall.Groups[1].Value, CultureInfo.InvariantCulture), 0.0, 2.0);
    }

    [Fact]
    public void The_unit_waits_for_etcd_notifies_runs_as_its_own_user_and_checks_before_serving()
    {
        var unit = SystemdService.Load(DeployFiles.ShieldUnit);
        var unitText = File.ReadAllText(DeployFiles.ShieldUnit);

        Assert.Equal("notify", unit.Value("Type"));
        Assert.Matches(@"(?m)^Requires=.*\betcd\.service\b", unitText);
        Assert.Matches(@"(?m)^After=.*\betcd\.service\b", unitText);
        Assert.Equal("-/etc/default/etcdshield", unit.Value("EnvironmentFile"));
        Assert.Equal("etcdshield", unit.Value("User"));
        Assert.Equal(["/usr/local/bin/etcdshield check"], unit.Values("ExecStartPre"));
        Assert.Equal(["/usr/local/bin/etcdshield serve"], unit.Values("ExecStart"));
        Assert.All(File.ReadAllLines(DeployFiles.ShieldDefaults).Where(l => l.Length > 0 && l[0] != '#'), l => Assert.StartsWith("ETCDSHIELD_", l, StringComparison.Ordinal));
    }

    [GeneratedRegex(@"Overall exposure level for etcdshield\.service: (\d+(?:\.\d+)?) ")]
    private static partial Regex OverallExposure();

    /// <summary>
    /// A root directory for `systemd-analyze verify --root`: the host's system units (targets, slices) and
    /// Debian's etcd.service, the files under test in /etc/systemd/system, and stand-ins for the executables the
    /// units name (verify checks that they exist and are executable).
    /// </summary>
    private sealed class UnitRoot : IDisposable
    {
        private readonly string root = Directory.CreateTempSubdirectory("etcdshield-units-").FullName;

        public UnitRoot()
        {
            var system = Directory.CreateDirectory(Path.Combine(root, "usr/lib/systemd/system")).FullName;
            foreach (var unit in Directory.EnumerateFiles("/lib/systemd/system"))
            {
                var info = new FileInfo(unit);
                if (info.LinkTarget is null || info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true, FullName: not "/dev/null" })
                {
                    File.Copy(unit, Path.Combine(system, info.Name));
                }
            }

            foreach (var executable in (string[])["usr/local/bin/etcdshield", "usr/bin/etcd", "bin/kill"])
            {
                var path = Path.Combine(root, executable);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllText(path, "#!/bin/sh\n");
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        public void Install(string relativePath, string text)
        {
            var path = Path.Combine(root, "etc/systemd/system", relativePath);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, text);
        }

        public Task<CommandResult> VerifyAsync(params string[] units) =>
            ExternalCommand.RunAsync(SystemdAnalyze, ["verify", "--root=" + root, .. units]);

        public void Dispose() => Directory.Delete(root, recursive: true);
    }
}
