using EtcdShield.Checks;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.Tests.Checks;

public sealed class PolicyCheckTests : IDisposable
{
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    private string Write(string yaml)
    {
        var path = Path.Combine(_pki.Directory, "policy.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public void A_policy_file_parses_and_its_identities_are_counted_with_the_allow_flags()
    {
        var file = Write("identities:\n  - name: apiserver\n    match:\n      cn: kube-apiserver-etcd-client\n    keys:\n      - prefix: /registry/\n        permission: readwrite\n");

        var lines = Checked.Lines(r => PolicyCheck.Run(Checked.Serving(_pki) with { PolicyFile = file }, r));

        Assert.Equal($"ok   policy: {file} parses: 2 identities (apiserver, cn:root)", Assert.Single(lines).ToString());
    }

    [Fact]
    public void A_policy_that_does_not_parse_fails_with_the_line()
    {
        var file = Write("identities:\n  - name: apiserver\n    match:\n      colour: blue\n");

        var lines = Checked.Lines(r => PolicyCheck.Run(Checked.Serving(_pki) with { PolicyFile = file }, r));

        var failure = Assert.Single(lines);
        Assert.Equal(CheckStatus.Fail, failure.Status);
        Assert.StartsWith($"--policy-file {file}: line 4", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_policy_file_fails()
    {
        var missing = Path.Combine(_pki.Directory, "missing.yaml");

        var lines = Checked.Lines(r => PolicyCheck.Run(Checked.Serving(_pki) with { PolicyFile = missing }, r));

        Assert.StartsWith($"cannot read --policy-file {missing}", Checked.Single(lines, CheckStatus.Fail).Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void No_identity_at_all_fails()
    {
        var lines = Checked.Lines(r => PolicyCheck.Run(Checked.Serving(_pki) with { AllowCommonNames = [] }, r));

        Assert.StartsWith("no identity may connect", Checked.Single(lines, CheckStatus.Fail).Detail, StringComparison.Ordinal);
    }
}
