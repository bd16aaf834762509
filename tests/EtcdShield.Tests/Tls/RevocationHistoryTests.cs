using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Tls;

namespace EtcdShield.Tests.Tls;

public sealed class RevocationHistoryTests : IDisposable
{
    private static readonly DateTimeOffset Noon = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly X509Certificate2 _ca = Authority("ca");
    private readonly X509Certificate2 _other = Authority("other");
    private readonly RevocationHistory _history = new();

    public void Dispose()
    {
        _ca.Dispose();
        _other.Dispose();
    }

    private static X509Certificate2 Authority(string name)
    {
        var request = new CertificateRequest($"CN={name}", ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private RevocationList Crl(long? number, DateTimeOffset thisUpdate, X509Certificate2? signer = null, params byte[][] revoked) =>
        RevocationList.Parse(
            new TestCrl
            {
                Signer = signer ?? _ca,
                Number = number is { } n ? new BigInteger(n) : null,
                ThisUpdate = thisUpdate,
                NextUpdate = thisUpdate.AddDays(7),
                Revoked = [.. revoked.Select(serial => (serial, (IReadOnlyList<X509Extension>)[]))],
            }.Encode(),
            [_ca, _other],
            "crl.pem");

    private string Refusal(params RevocationList[] lists) =>
        Assert.Throws<ConfigurationException>(() => _history.Advance(lists, "crl.pem")).Message;

    [Fact]
    public void Goes_forward_and_accepts_the_crl_in_force_again()
    {
        var second = Crl(2, Noon);
        _history.Advance([Crl(1, Noon)], "crl.pem");

        _history.Advance([second], "crl.pem");
        _history.Advance([second], "crl.pem");
        _history.Advance([Crl(3, Noon.AddHours(1))], "crl.pem");
    }

    [Fact]
    public void Refuses_a_lower_crl_number_even_with_a_later_this_update()
    {
        _history.Advance([Crl(5, Noon)], "crl.pem");

        var message = Refusal(Crl(4, Noon.AddDays(1)));

        Assert.Contains("is CRL number 4, older than CRL number 5 in force", message, StringComparison.Ordinal);
        Assert.Contains("'CN=ca'", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_an_earlier_this_update_even_with_a_higher_number()
    {
        _history.Advance([Crl(5, Noon)], "crl.pem");

        Assert.Contains("before the CRL in force (2026-12-01T12:00:00Z)", Refusal(Crl(6, Noon.AddHours(-1))), StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_the_same_number_with_other_contents()
    {
        _history.Advance([Crl(5, Noon)], "crl.pem");

        Assert.Contains("reuses CRL number 5", Refusal(Crl(5, Noon, revoked: [[0x42]])), StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_a_crl_without_a_number_once_a_numbered_one_was_in_force()
    {
        _history.Advance([Crl(5, Noon)], "crl.pem");

        Assert.Contains("has no CRL number", Refusal(Crl(null, Noon.AddHours(1))), StringComparison.Ordinal);
    }

    [Fact]
    public void Orders_crls_without_numbers_by_this_update()
    {
        _history.Advance([Crl(null, Noon)], "crl.pem");

        Refusal(Crl(null, Noon.AddSeconds(-1)));
        _history.Advance([Crl(null, Noon.AddSeconds(1))], "crl.pem");
        _history.Advance([Crl(1, Noon.AddSeconds(1))], "crl.pem");
    }

    [Fact]
    public void Keeps_each_ca_apart()
    {
        var ninth = Crl(9, Noon);
        _history.Advance([ninth, Crl(1, Noon, _other)], "crl.pem");

        _history.Advance([ninth, Crl(2, Noon, _other)], "crl.pem");
        Refusal(Crl(8, Noon), Crl(2, Noon, _other));
    }

    [Fact]
    public void Refuses_a_file_that_leaves_out_the_crl_of_a_ca_that_had_one()
    {
        var other = Crl(1, Noon, _other);
        _history.Advance([Crl(1, Noon), other], "crl.pem");

        var message = Refusal(other);
        Refusal();

        Assert.Contains("the CRL of 'CN=ca' is no longer in the file", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Accepts_the_crl_of_a_ca_that_had_none_yet()
    {
        var first = Crl(1, Noon);
        _history.Advance([first], "crl.pem");

        _history.Advance([first, Crl(1, Noon, _other)], "crl.pem");
    }

    [Fact]
    public void A_refused_reload_records_nothing()
    {
        _history.Advance([Crl(1, Noon), Crl(1, Noon, _other)], "crl.pem");

        // The other CA's CRL 5 comes with this CA's rollback: neither is in force, so 3 is still newer.
        Refusal(Crl(5, Noon, _other), Crl(0, Noon));
        _history.Advance([Crl(1, Noon), Crl(3, Noon, _other)], "crl.pem");
    }
}
