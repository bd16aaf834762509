using System.Net;
using System.Text;

namespace EtcdShield.LoadGen.Load;

/// <summary>What a gateway client sends: etcd's documented JSON put and single-key (linearizable) range.</summary>
internal enum GatewayOperation
{
    Put,
    Range,
}

internal static class GatewayOperations
{
    public static IReadOnlyList<GatewayOperation> All { get; } = Enum.GetValues<GatewayOperation>();

    public static string Id(this GatewayOperation operation) => operation switch
    {
        GatewayOperation.Put => "put",
        GatewayOperation.Range => "range",
        _ => operation.ToString(),
    };

    public static string Path(this GatewayOperation operation) => operation switch
    {
        GatewayOperation.Put => "/v3/kv/put",
        _ => "/v3/kv/range",
    };

    public static string Describe(this GatewayOperation operation) => operation switch
    {
        GatewayOperation.Put => "POST /v3/kv/put of a random key",
        _ => "POST /v3/kv/range of one random prepopulated key (linearizable)",
    };
}

/// <summary>
/// One key space's gateway request bodies, built before the load starts: every target then costs the load generator
/// the same per request, and nothing is encoded in the measured loop.
/// </summary>
internal sealed class GatewayRequests
{
    private static readonly byte[] AnswerStart = "{\"header\":{"u8.ToArray();

    private readonly byte[][] _puts;
    private readonly byte[][] _ranges;

    // What every range answer must contain: the value of the size under test, as the gateway writes bytes (standard
    // padded base64). An encrypting relay that answered with the envelope, or with nothing, fails this.
    private readonly byte[] _value;

    public GatewayRequests(KeySpace keys)
    {
        ValueSize = keys.ValueSize;
        var value = Convert.ToBase64String(keys.Value.Span);
        _value = Encoding.UTF8.GetBytes($"\"value\":\"{value}\"");
        _puts = new byte[keys.Count][];
        _ranges = new byte[keys.Count][];
        for (var i = 0; i < keys.Count; i++)
        {
            var key = Convert.ToBase64String(keys[i].Span);
            _puts[i] = Encoding.UTF8.GetBytes($"{{\"key\":\"{key}\",\"value\":\"{value}\"}}");
            _ranges[i] = Encoding.UTF8.GetBytes($"{{\"key\":\"{key}\"}}");
        }
    }

    public int ValueSize { get; }

    public int Count => _puts.Length;

    public byte[] Body(GatewayOperation operation, int key) => operation == GatewayOperation.Put ? _puts[key] : _ranges[key];

    /// <summary>Null for a good answer; otherwise the error it is counted under ("HTTP 503", "wrong value").</summary>
    public string? Check(GatewayOperation operation, GatewayAnswer answer)
    {
        if (answer.Status != HttpStatusCode.OK)
        {
            return "HTTP " + (int)answer.Status;
        }

        if (!answer.Body.AsSpan().StartsWith(AnswerStart))
        {
            return "not an etcd answer";
        }

        return operation == GatewayOperation.Range && answer.Body.AsSpan().IndexOf(_value) < 0 ? "wrong value" : null;
    }
}
