using System.Globalization;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Authorization;

/// <summary>
/// A client that is not Go: Debian's python3-etcd3 under the policy. What the tenant identity is granted works as
/// against etcd; what it is not comes back as gRPC PERMISSION_DENIED naming the identity, which the library
/// surfaces as it surfaces etcd's own permission errors.
/// </summary>
[Collection(PolicyProxy.Name)]
public sealed class PythonClientPolicyTests(PolicyFixture fixture)
{
    /// <summary>The system Python, which has the Debian package; the one first on PATH may not.</summary>
    private const string Python = "/usr/bin/python3";

    private const string Script = """
        # Usage: policy_client.py HOST PORT CA_FILE CERT_FILE KEY_FILE
        import json
        import sys

        import etcd3
        import grpc

        host, port, ca, cert, key = sys.argv[1:6]
        client = etcd3.client(host=host, port=int(port), ca_cert=ca, cert_cert=cert, cert_key=key, timeout=10)
        seen = {}

        def denied(call):
            try:
                call()
                return None
            except grpc.RpcError as e:
                return {"code": e.code().name, "details": e.details()}

        client.put("/tenant/py/a", "mine")
        seen["get"] = client.get("/tenant/py/a")[0].decode()
        seen["read_shared"] = client.get("/shared/py/none")[0]
        seen["put_shared"] = denied(lambda: client.put("/shared/py/a", "not mine"))
        seen["get_registry"] = denied(lambda: client.get("/registry/secrets/x"))
        seen["delete_prefix_registry"] = denied(lambda: client.delete_prefix("/registry/"))
        print(json.dumps(seen))
        """;

    [Fact]
    public async Task Python_etcd3_gets_what_the_tenant_is_granted_and_permission_denied_for_the_rest()
    {
        var script = Path.Combine(fixture.Pki.Directory, "policy_client.py");
        await File.WriteAllTextAsync(script, Script);
        var url = new Uri(fixture.Shield.ClientUrl);

        var run = await ExternalCommand.RunAsync(
            Python,
            [script, url.Host, url.Port.ToString(CultureInfo.InvariantCulture), fixture.Pki.CaFile, fixture.Tenant.CertFile, fixture.Tenant.KeyFile]);

        Assert.True(run.Succeeded, run.ToString());
        using var seen = JsonDocument.Parse(run.StdOut);
        var root = seen.RootElement;
        Assert.Equal("mine", root.GetProperty("get").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("read_shared").ValueKind);
        foreach (var name in (string[])["put_shared", "get_registry", "delete_prefix_registry"])
        {
            var denial = root.GetProperty(name);
            Assert.Equal("PERMISSION_DENIED", denial.GetProperty("code").GetString());
            Assert.Contains("identity \"tenant\"", denial.GetProperty("details").GetString(), StringComparison.Ordinal);
        }
    }
}
