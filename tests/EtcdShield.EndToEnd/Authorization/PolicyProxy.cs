namespace EtcdShield.EndToEnd.Authorization;

/// <summary>The test classes that share one policy-enforcing proxy (each keeps to its own keys).</summary>
[CollectionDefinition(Name)]
public sealed class PolicyProxy : ICollectionFixture<PolicyFixture>
{
    public const string Name = "Policy";
}
