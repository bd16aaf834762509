using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using EtcdShield.Api;
using EtcdShield.Gateway;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace EtcdShield.Fuzz;

/// <summary>
/// A gateway request body, which any client with a certificate sends: the first byte picks the request type, the
/// rest is the body, split by <see cref="JsonMessageReader"/> (fed in two parts, as a network would) into messages.
/// Refusals are InvalidArgument and ResourceExhausted. Every message read must also survive the writer and read
/// back equal, so a reader that accepts what it cannot represent is a crash too.
/// </summary>
internal sealed class GatewayJsonTarget : FuzzTarget
{
    private const int MaxMessageBytes = 64 * 1024;

    private static readonly MessageDescriptor[] Requests = EtcdApi.Methods.Select(m => m.InputType).DistinctBy(d => d.FullName).ToArray();

    public override string Name => "json";

    public override FuzzAction Prepare(string directory) => input =>
    {
        if (input.IsEmpty)
        {
            return;
        }

        var descriptor = Requests[input[0] % Requests.Length];
        var body = input[1..].ToArray();
        try
        {
            _ = JsonpbReader.Read(descriptor, body);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument)
        {
        }

        foreach (var message in ReadAll(descriptor, body))
        {
            var again = JsonpbReader.Read(descriptor, JsonpbWriter.ToUtf8Bytes(message));
            if (!again.Equals(message))
            {
                throw new InvalidOperationException($"{descriptor.Name} does not read back as written");
            }
        }
    };

    private static List<IMessage> ReadAll(MessageDescriptor descriptor, byte[] body)
    {
        var pipe = new Pipe();
        var half = body.Length / 2;
        pipe.Writer.Write(body.AsSpan(0, half));
        _ = pipe.Writer.FlushAsync().AsTask().GetAwaiter().GetResult();
        var reader = new JsonMessageReader(pipe.Reader, descriptor, MaxMessageBytes);
        var messages = new List<IMessage>();
        try
        {
            // The first part alone may already hold whole values; the rest arrives once the reader waits.
            var read = reader.ReadAsync(CancellationToken.None);
            pipe.Writer.Write(body.AsSpan(half));
            pipe.Writer.Complete();
            while (read.AsTask().GetAwaiter().GetResult() is { } message)
            {
                messages.Add(message);
                read = reader.ReadAsync(CancellationToken.None);
            }
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.InvalidArgument or StatusCode.ResourceExhausted)
        {
        }

        return messages;
    }

    public override IEnumerable<(string Name, byte[] Bytes)> Seeds(string directory)
    {
        (string Type, string Json)[] seeds =
        [
            ("PutRequest", """{"key":"Zm9v","value":"YmFy","prev_kv":true,"lease":"7"}"""),
            ("RangeRequest", """{"key":"aw==","range_end":"bA==","limit":1,"sort_order":"DESCEND","sortTarget":2}"""),
            ("TxnRequest", """{"compare":[{"key":"Zm9v","target":"VERSION","version":"0"},{"key":"aw==","target":"VALUE","value":"djE="}],"success":[{"request_put":{"key":"dA==","value":"dHY="}}],"failure":[{"request_txn":{"success":[{"request_delete_range":{"key":"aw==","prev_kv":true}}]}}]}"""),
            ("WatchRequest", "{\"create_request\":{\"key\":\"Zm9v\",\"start_revision\":2,\"prev_kv\":true}}\n{\"progress_request\":{}} {\"cancel_request\":{\"watch_id\":\"1\"}}null"),
            ("LeaseGrantRequest", """{"TTL":300,"ID":1234}"""),
            ("LeaseTimeToLiveRequest", """{"ID":"1234","keys":true,"unknown":[{"x":null}]}"""),
            ("MemberAddRequest", """{"peerURLs":["http://127.0.0.1:2380"],"isLearner":true}"""),
            ("AuthenticateRequest", """{"name":"r\u00f6ot","password":"p\"w"}"""),
        ];
        foreach (var (type, json) in seeds)
        {
            var kind = Array.FindIndex(Requests, d => d.Name == type);
            yield return (type, [(byte)kind, .. Encoding.UTF8.GetBytes(json)]);
        }
    }
}
