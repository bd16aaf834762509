using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.Tls;

/// <summary>The certificate the proxy presents to clients, ready for TLS, and its leaf for expiry reporting.</summary>
internal sealed record ServerCertificate(SslStreamCertificateContext Context, X509Certificate2 Leaf);
