namespace EtcdShield.Fuzz;

/// <summary>
/// One parser an attacker can feed, as a fuzz target: <see cref="Prepare"/> builds what the parser needs once
/// (keys, trusted CAs, a policy) and returns the action run on each input. The action lets through only what is
/// not the parser's documented way of refusing input, so any exception it throws is a crash.
/// </summary>
internal abstract class FuzzTarget
{
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new EnvelopeTarget(),
        new RevocationListTarget(),
        new CertificateTarget(),
        new PolicyTarget(),
        new RequestTarget(),
        new GatewayJsonTarget(),
    ];

    public abstract string Name { get; }

    /// <param name="directory">Where <see cref="Seeds"/> wrote its files, for targets that need more than the input.</param>
    public abstract FuzzAction Prepare(string directory);

    /// <summary>A few valid inputs (and files the target needs beside them, written to <paramref name="directory"/>).</summary>
    public abstract IEnumerable<(string Name, byte[] Bytes)> Seeds(string directory);
}

internal delegate void FuzzAction(ReadOnlySpan<byte> input);
