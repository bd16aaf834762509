using System.Security.Cryptography;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Keys.Pkcs11;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Keys;

/// <summary>The PKCS#11 KEK against a real SoftHSM2 token, in process.</summary>
[Collection(SoftHsmTests.Name)]
public sealed class Pkcs11KekTests(SoftHsmInProcess hsm)
{
    [Fact]
    public void A_created_kek_cannot_be_read_out_of_the_token()
    {
        var token = hsm.CreateToken();
        using var store = Open(token, "kek", readWrite: true);
        var created = store.CreateVersion(rotate: false);

        // The raw C_GetAttributeValue, through another implementation, so the module's own answer is checked, not the proxy's reading of it.
        using (hsm.Module.EnterCall())
        {
            var (rv, value) = hsm.Administration.ReadValue(token.Label, SoftHsmInProcess.Pin, created.Key.Handle);

            Assert.Equal(Net.Pkcs11Interop.Common.CKR.CKR_ATTRIBUTE_SENSITIVE, rv);
            Assert.All(value, b => Assert.Equal(0, b));
        }

        Assert.Equal("pkcs11:kek", created.KekId);
        Assert.True(created.Key.Sensitive);
        Assert.False(created.Key.Extractable);
        Assert.Null(created.Key.Problem());
        Assert.Empty(created.Key.Weaknesses());
    }

    [Fact]
    public async Task Pkcs11_tool_cannot_read_the_kek_either()
    {
        var token = hsm.CreateToken();
        using (var store = Open(token, "kek", readWrite: true))
        {
            store.CreateVersion(rotate: false);
        }

        var read = await token.Pkcs11ToolAsync("--read-object", "--type", "secrkey", "--label", "kek");
        var listed = (await token.Pkcs11ToolAsync("--list-objects")).EnsureSuccess();

        Assert.False(read.Succeeded, read.ToString());
        Assert.Contains("CKR_ATTRIBUTE_SENSITIVE", read.StdOut + read.StdErr, StringComparison.Ordinal);
        Assert.Contains("never extractable", listed.StdOut, StringComparison.Ordinal);
        Assert.Contains("Usage:      wrap, unwrap", listed.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wraps_to_rfc_5649_and_unwraps_what_it_wrapped()
    {
        var token = hsm.CreateToken();
        using var store = Open(token, "kek", readWrite: true);
        store.CreateVersion(rotate: false);
        var ring = store.LoadKeyRing();
        var dek = RandomNumberGenerator.GetBytes(32);

        var wrapped = await ring.Current.WrapAsync(dek, default);
        var unwrapped = await ring.Current.UnwrapAsync(wrapped, default);
        var again = await ring.Current.WrapAsync(dek, default);

        Assert.Equal("pkcs11:kek", ring.Current.Id);
        Assert.Equal(40, wrapped.Length);
        Assert.Equal(dek, unwrapped);
        Assert.Equal(wrapped, again); // RFC 5649 is deterministic
    }

    [Fact]
    public async Task Tampered_or_misshapen_wrapped_keys_are_refused_as_data_loss_not_outage()
    {
        var token = hsm.CreateToken();
        using var store = Open(token, "kek", readWrite: true);
        store.CreateVersion(rotate: false);
        var kek = store.LoadKeyRing().Current;
        var wrapped = await kek.WrapAsync(RandomNumberGenerator.GetBytes(32), default);
        var tampered = (byte[])wrapped.Clone();
        tampered[7] ^= 1;

        var flipped = await Assert.ThrowsAsync<KeyUnwrapException>(() => kek.UnwrapAsync(tampered, default).AsTask());
        var shortened = await Assert.ThrowsAsync<KeyUnwrapException>(() => kek.UnwrapAsync(wrapped.AsMemory(0, 20), default).AsTask());

        // SoftHSM reports the failed integrity check as CKR_GENERAL_ERROR; the probe tells it from a dead token.
        Assert.Contains("pkcs11:kek", flipped.Message, StringComparison.Ordinal);
        Assert.Contains("pkcs11:kek", shortened.Message, StringComparison.Ordinal);

        // And the token is still fine afterwards.
        var dek = RandomNumberGenerator.GetBytes(32);
        Assert.Equal(dek, await kek.UnwrapAsync(await kek.WrapAsync(dek, default), default));
    }

    [Fact]
    public async Task An_operator_key_made_with_pkcs11_tool_works_as_version_1()
    {
        var token = hsm.CreateToken();
        (await token.OperatorKeyAsync("ops-kek", "--sensitive", "--usage-wrap")).EnsureSuccess();
        using var store = Open(token, "ops-kek");

        var ring = store.LoadKeyRing();
        store.ProveRoundTrip(ring);
        var versions = store.ListVersions();

        Assert.Equal("pkcs11:ops-kek", ring.Current.Id);
        Assert.Equal(1, Assert.Single(versions).Version);

        // pkcs11-tool leaves CKA_PRIVATE false: usable, but worth a warning.
        Assert.Contains(versions[0].Key.Weaknesses(), w => w.Contains("CKA_PRIVATE", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_key_that_is_not_sensitive_is_refused_with_a_message_naming_the_flag()
    {
        var token = hsm.CreateToken();
        (await token.OperatorKeyAsync("soft", "--usage-wrap")).EnsureSuccess();
        using var store = Open(token, "soft");

        var refused = Assert.Throws<KeyProviderUnavailableException>(() => store.LoadKeyRing());

        Assert.Contains("--pkcs11-key-label soft", refused.Message, StringComparison.Ordinal);
        Assert.Contains("CKA_SENSITIVE", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_without_wrap_usage_or_of_the_wrong_size_is_refused()
    {
        var token = hsm.CreateToken();
        token.GenerateAesKey("no-wrap", 32, sensitive: true, wrap: false, unwrap: true);
        token.GenerateAesKey("no-unwrap", 32, sensitive: true, wrap: true, unwrap: false);
        token.GenerateAesKey("small", 16, sensitive: true, wrap: true, unwrap: true);
        using var noWrapStore = Open(token, "no-wrap");
        using var noUnwrapStore = Open(token, "no-unwrap");
        using var small = Open(token, "small");

        var noWrap = Assert.Throws<KeyProviderUnavailableException>(() => noWrapStore.LoadKeyRing());
        var noUnwrap = Assert.Throws<KeyProviderUnavailableException>(() => noUnwrapStore.LoadKeyRing());
        var tooSmall = Assert.Throws<KeyProviderUnavailableException>(() => small.LoadKeyRing());

        Assert.Contains("CKA_WRAP is false", noWrap.Message, StringComparison.Ordinal);
        Assert.Contains("CKA_UNWRAP is false", noUnwrap.Message, StringComparison.Ordinal);
        Assert.Contains("AES-128", tooSmall.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_token_missing_key_and_wrong_pin_each_say_what_to_fix()
    {
        var token = hsm.CreateToken();

        // Login is per process and token, so the wrong PIN goes first, before anything logs in to this token.
        var wrongPin = Path.Combine(Path.GetDirectoryName(token.PinFile)!, $"{token.Label}.wrong");
        File.WriteAllText(wrongPin, "000000");

        using var badPin = Pkcs11KeyStore.Open(token.Settings("kek") with { PinFile = wrongPin }, false, NullLogger.Instance);
        using var noToken = Pkcs11KeyStore.Open(token.Settings("kek") with { TokenLabel = "no-such-token" }, false, NullLogger.Instance);
        using var noKey = Open(token, "no-such-key");

        var pinRefused = Assert.Throws<KeyProviderUnavailableException>(() => badPin.LoadKeyRing());
        var notRetried = Assert.Throws<KeyProviderUnavailableException>(() => badPin.LoadKeyRing());
        var tokenMissing = Assert.Throws<KeyProviderUnavailableException>(() => noToken.LoadKeyRing());
        var keyMissing = Assert.Throws<KeyProviderUnavailableException>(() => noKey.LoadKeyRing());

        Assert.Contains("--pkcs11-token-label", tokenMissing.Message, StringComparison.Ordinal);
        Assert.Contains($"\"{token.Label}\"", tokenMissing.Message, StringComparison.Ordinal); // lists the tokens present
        Assert.Contains("--pkcs11-key-label no-such-key", keyMissing.Message, StringComparison.Ordinal);
        Assert.Contains("keys create", keyMissing.Message, StringComparison.Ordinal);
        Assert.Contains("CKR_PIN_INCORRECT", pinRefused.Message, StringComparison.Ordinal);
        Assert.Contains("--pkcs11-pin-file", pinRefused.Message, StringComparison.Ordinal);
        Assert.Contains("will not try it again", notRetried.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("000000", pinRefused.Message + notRetried.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Only_family_versions_and_retired_labels_unwrap_by_their_id_and_absent_versions_are_unknown_keys()
    {
        var token = hsm.CreateToken();
        using var oldStore = Open(token, "old kek", readWrite: true);
        oldStore.CreateVersion(rotate: false);
        var old = oldStore.LoadKeyRing().Current;
        var dek = RandomNumberGenerator.GetBytes(32);
        var wrapped = await old.WrapAsync(dek, default);

        using var store = Open(token, "new", readWrite: true);
        store.CreateVersion(rotate: false);
        var ring = store.LoadKeyRing();
        using var retiring = Pkcs11KeyStore.Open(token.Settings("new") with { RetiredKeyLabels = ["old kek"] }, readWrite: false, NullLogger.Instance);
        var retiringRing = retiring.LoadKeyRing();

        Assert.Equal("pkcs11:old%20kek", old.Id);
        Assert.False(ring.TryGet("pkcs11:old%20kek", out _));
        Assert.True(retiringRing.TryGet("pkcs11:old%20kek", out var resolved));
        Assert.Equal(dek, await resolved.UnwrapAsync(wrapped, default));
        Assert.True(ring.TryGet("pkcs11:new#7", out var absent));
        var unknown = await Assert.ThrowsAsync<UnknownKeyException>(() => absent.UnwrapAsync(wrapped, default).AsTask());
        Assert.Equal("pkcs11:new#7", unknown.KekId);
        Assert.False(ring.TryGet("pkcs11:gone", out _));
        Assert.False(retiringRing.TryGet("pkcs11:old kek", out _));
        Assert.False(ring.TryGet("file:0011223344556677", out _));
        Assert.False(ring.TryGet("kms:new", out _));
    }

    [Fact]
    public async Task Concurrent_wraps_and_unwraps_share_a_few_sessions_safely()
    {
        var token = hsm.CreateToken();
        using var store = Pkcs11KeyStore.Open(token.Settings("kek") with { MaxSessions = 3 }, readWrite: true, NullLogger.Instance);
        store.CreateVersion(rotate: false);
        var kek = store.LoadKeyRing().Current;

        var results = await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
        {
            var dek = RandomNumberGenerator.GetBytes(32);
            var unwrapped = await kek.UnwrapAsync(await kek.WrapAsync(dek, default), default);
            return dek.AsSpan().SequenceEqual(unwrapped);
        }));

        Assert.All(results, Assert.True);
    }

    private static Pkcs11KeyStore Open(InProcessToken token, string keyLabel, bool readWrite = false) =>
        Pkcs11KeyStore.Open(token.Settings(keyLabel), readWrite, NullLogger.Instance);
}
