namespace EtcdShield.Tls;

/// <summary>
/// The last word on a handshake whose certificate is valid, unrevoked and unambiguous: whether its identity may
/// connect at all. That is the policy's decision, which the TLS layer does not know; it is asked afresh for every
/// handshake, so a reloaded policy applies to the next client.
/// </summary>
internal interface IClientAdmission
{
    bool Admits(ClientIdentity identity);
}
