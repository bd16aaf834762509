using EtcdShield.Authorization;
using EtcdShield.Tls;

namespace EtcdShield.Tests.Authorization;

public sealed class IdentityMatchTests
{
    private const string Fingerprint = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    private static ClientIdentity Identity(string? cn = null, string[]? dns = null, string[]? uris = null, string[]? ous = null, string fingerprint = Fingerprint) =>
        new(cn, ous ?? [], dns ?? [], uris ?? [], fingerprint);

    [Fact]
    public void Allow_flags_admit_on_any_matching_entry_and_nothing_else()
    {
        var policy = new AccessPolicy(AccessPolicy.FromAllowFlags(["apiserver"], ["backup.example"], ["spiffe://td/ns/prod/sa/api"]), "flags");

        Assert.Equal("cn:apiserver", policy.Resolve(Identity(cn: "apiserver"))?.Name);
        Assert.Equal("dns:backup.example", policy.Resolve(Identity(cn: "other", dns: ["BACKUP.example"]))?.Name);
        Assert.NotNull(policy.Resolve(Identity(uris: ["spiffe://td/ns/prod/sa/api"])));
        Assert.Null(policy.Resolve(Identity(cn: "Apiserver")));
        Assert.Null(policy.Resolve(Identity(dns: ["apiserver"])));
        Assert.Null(policy.Resolve(Identity(uris: ["spiffe://td/ns/prod/sa/api2"])));
        Assert.Null(policy.Resolve(Identity()));
    }

    [Fact]
    public void Every_kind_of_name_given_must_match()
    {
        var match = new IdentityMatch(["backup"], [], [], ["ops"], []);

        Assert.True(match.Matches(Identity(cn: "backup", ous: ["dev", "ops"])));
        Assert.False(match.Matches(Identity(cn: "backup", ous: ["dev"])));
        Assert.False(match.Matches(Identity(cn: "other", ous: ["ops"])));
    }

    [Fact]
    public void Organizational_units_match_whole_and_exactly()
    {
        var match = new IdentityMatch([], [], [], ["ops"], []);

        Assert.True(match.Matches(Identity(ous: ["contractors", "ops"])));
        Assert.False(match.Matches(Identity(ous: ["ops,admin"])));
        Assert.False(match.Matches(Identity(ous: ["Ops"])));
        Assert.False(match.Matches(Identity(ous: ["ops "])));
    }

    [Fact]
    public void An_identity_with_a_refusal_matches_nothing_not_even_its_fingerprint()
    {
        var refused = Identity(cn: "admin", fingerprint: Fingerprint) with { Refusal = "its subject has more than one CN" };

        Assert.False(new IdentityMatch(["admin"], [], [], [], []).Matches(refused));
        Assert.False(new IdentityMatch([], [], [], [], [Fingerprint]).Matches(refused));
    }

    [Fact]
    public void Fingerprints_match_in_the_forms_tools_print()
    {
        var colons = string.Join(':', Enumerable.Range(0, 32).Select(i => Fingerprint.Substring(i * 2, 2).ToUpperInvariant()));
        var match = new IdentityMatch([], [], [], [], [colons]);

        Assert.True(match.Matches(Identity(cn: "anything")));
        Assert.False(match.Matches(Identity(cn: "anything", fingerprint: new string('1', 64))));
    }

    [Fact]
    public void An_empty_match_matches_nothing() =>
        Assert.False(new IdentityMatch([], [], [], [], []).Matches(Identity(cn: "x")));

    [Fact]
    public void The_first_matching_identity_decides()
    {
        var specific = new PolicyIdentity("specific", new IdentityMatch(["a"], [], [], ["ops"], []), [], KeyGrants.None);
        var general = new PolicyIdentity("general", new IdentityMatch(["a"], [], [], [], []), [], KeyGrants.All);
        var policy = new AccessPolicy([specific, general], "test");

        Assert.Equal("specific", policy.Resolve(Identity(cn: "a", ous: ["ops"]))?.Name);
        Assert.Equal("general", policy.Resolve(Identity(cn: "a"))?.Name);
    }

    [Theory]
    [InlineData("spiffe://td/ns/*/sa/api", "spiffe://td/ns/prod/sa/api", true)]
    [InlineData("spiffe://td/ns/*/sa/api", "spiffe://td/ns/prod/extra/sa/api", false)]
    [InlineData("spiffe://td/ns/*/sa/api", "spiffe://td/ns//sa/api", false)]
    [InlineData("spiffe://td/ns/prod/**", "spiffe://td/ns/prod/sa/api", true)]
    [InlineData("spiffe://td/ns/prod/**", "spiffe://td/ns/prod", false)]
    [InlineData("spiffe://td/ns/prod/**", "spiffe://td/ns/production/x", false)]
    [InlineData("spiffe://td/a", "spiffe://td/a/", false)]
    public void Uri_patterns_match_whole_segments(string pattern, string uri, bool expected) =>
        Assert.Equal(expected, UriPattern.Matches(pattern, uri));
}
