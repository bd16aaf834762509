using EtcdShield.Authorization;
using EtcdShield.Configuration;

namespace EtcdShield.Tests.Authorization;

public sealed class AccessPolicyTests
{
    private static PolicyIdentity Named(string name) => new(name, new IdentityMatch([name], [], [], [], []), [], KeyGrants.None);

    /// <summary>Two names whose lease tags collide, found by search (about 2¹² names by the birthday bound).</summary>
    private static (string First, string Second) CollidingNames()
    {
        var seen = new Dictionary<int, string>();
        for (var i = 0; ; i++)
        {
            var name = $"identity-{i}";
            if (!seen.TryAdd(LeaseTag.Of(name), name))
            {
                return (seen[LeaseTag.Of(name)], name);
            }
        }
    }

    [Fact]
    public void Identities_whose_lease_tags_collide_are_a_load_error_naming_both()
    {
        var (first, second) = CollidingNames();

        var e = Assert.Throws<ConfigurationException>(() => new AccessPolicy([Named(first), Named("other"), Named(second)], "test"));

        Assert.Contains($"identities '{first}' and '{second}' have the same lease tag", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Identities_with_distinct_tags_load()
    {
        var policy = new AccessPolicy([Named("alice"), Named("mallory")], "test");

        Assert.Equal(2, policy.Identities.Count);
    }
}
