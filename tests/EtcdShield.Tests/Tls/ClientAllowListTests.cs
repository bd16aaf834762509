using EtcdShield.Tls;

namespace EtcdShield.Tests.Tls;

public sealed class ClientAllowListTests
{
    private static ClientIdentity Identity(string? cn = null, string[]? dns = null, string[]? uris = null) =>
        new(cn, [], dns ?? [], uris ?? [], new string('0', 64));

    [Fact]
    public void Admits_on_any_matching_entry_and_nothing_else()
    {
        var allow = new ClientAllowList(["apiserver"], ["backup.example"], ["spiffe://td/ns/prod/sa/api"]);

        Assert.True(allow.Admits(Identity(cn: "apiserver")));
        Assert.True(allow.Admits(Identity(cn: "other", dns: ["BACKUP.example"])));
        Assert.True(allow.Admits(Identity(uris: ["spiffe://td/ns/prod/sa/api"])));
        Assert.False(allow.Admits(Identity(cn: "Apiserver")));
        Assert.False(allow.Admits(Identity(dns: ["apiserver"])));
        Assert.False(allow.Admits(Identity(uris: ["spiffe://td/ns/prod/sa/api2"])));
        Assert.False(allow.Admits(Identity()));
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
        Assert.Equal(expected, ClientAllowList.UriPatternMatches(pattern, uri));
}
