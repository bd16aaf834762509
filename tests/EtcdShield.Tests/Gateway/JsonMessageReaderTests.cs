using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using EtcdShield.Gateway;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Gateway;

/// <summary>A body's JSON values split as Go's json.Decoder splits them, however the bytes arrive.</summary>
public sealed class JsonMessageReaderTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static async Task<List<IMessage>> ReadAll(string body, int max = 1 << 20, bool byteByByte = false)
    {
        var pipe = new Pipe();
        var bytes = Encoding.UTF8.GetBytes(body);
        var writing = Task.Run(async () =>
        {
            if (byteByByte)
            {
                foreach (var b in bytes)
                {
                    await pipe.Writer.WriteAsync(new[] { b });
                }
            }
            else
            {
                await pipe.Writer.WriteAsync(bytes);
            }

            await pipe.Writer.CompleteAsync();
        });
        var reader = new JsonMessageReader(pipe.Reader, WatchRequest.Descriptor, max);
        var messages = new List<IMessage>();
        try
        {
            while (await reader.ReadAsync(None) is { } message)
            {
                messages.Add(message);
            }
        }
        finally
        {
            await pipe.Reader.CompleteAsync();
            await writing;
        }

        return messages;
    }

    private static WatchRequest Create(string key) => new() { CreateRequest = new WatchCreateRequest { Key = B(key) } };

    private const string Two = """{"create_request":{"key":"YQ=="}}{"create_request":{"key":"Yg=="}}""";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Concatenated_values_with_or_without_whitespace_are_successive_messages(bool byteByByte)
    {
        var expected = new IMessage[] { Create("a"), Create("b"), new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = 3 } }, new WatchRequest(), new WatchRequest { ProgressRequest = new WatchProgressRequest() } };

        var messages = await ReadAll(Two + " \r\n\t{\"cancel_request\":{\"watch_id\":\"3\"}}null\n{\"progress_request\":{\"x\":\"}{\\\"\"}}\n\n", byteByByte: byteByByte);

        Assert.Equal(expected, messages);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n")]
    public async Task An_empty_or_blank_body_has_no_messages(string body)
    {
        Assert.Empty(await ReadAll(body));
    }

    [Theory]
    [InlineData("{\"create_request\":{\"key\":\"YQ==\"")]
    [InlineData("{\"create_request\":\"abc")]
    [InlineData("nu")]
    public async Task A_body_ending_inside_a_value_is_invalid_argument(string body)
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => ReadAll(body, byteByByte: true));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Theory]
    [InlineData("[{}]")]
    [InlineData("\"x\"")]
    [InlineData("12")]
    [InlineData("nope")]
    [InlineData("{\"create_request\":{\"key\":1}}")]
    [InlineData("{]")]
    public async Task Bytes_that_are_not_a_json_object_are_invalid_argument(string body)
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => ReadAll(body));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task Values_after_a_bad_one_are_not_read()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => ReadAll("{\"create_request\":{}}{\"create_request\":5}" + Two));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task A_refused_body_stays_refused_on_the_next_read()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("{\"create_request\":5}"));
        await pipe.Writer.CompleteAsync();
        var reader = new JsonMessageReader(pipe.Reader, WatchRequest.Descriptor, 1 << 20);

        var first = await Assert.ThrowsAsync<RpcException>(() => reader.ReadAsync(None).AsTask());
        var second = await Assert.ThrowsAsync<RpcException>(() => reader.ReadAsync(None).AsTask());

        Assert.Equal(StatusCode.InvalidArgument, second.StatusCode);
        Assert.Equal(first.Status.Detail, second.Status.Detail);
    }

    [Fact]
    public async Task Nesting_deeper_than_the_limit_is_refused_before_the_value_ends()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("{\"x\":" + string.Concat(Enumerable.Repeat("[", 100))));
        var reader = new JsonMessageReader(pipe.Reader, WatchRequest.Descriptor, 1 << 20);

        var e = await Assert.ThrowsAsync<RpcException>(() => reader.ReadAsync(None).AsTask());

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task A_value_of_exactly_the_limit_is_read()
    {
        var value = """{"create_request":{"key":"YQ=="}}""";

        Assert.Equal(2, (await ReadAll(value + "  \n" + value, max: value.Length, byteByByte: true)).Count);
        var e = await Assert.ThrowsAsync<RpcException>(() => ReadAll(value + value, max: value.Length - 1));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
    }

    [Fact]
    public async Task A_value_over_the_limit_is_resource_exhausted_before_the_rest_arrives()
    {
        var pipe = new Pipe();
        var reader = new JsonMessageReader(pipe.Reader, PutRequest.Descriptor, 100);
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("   {\"value\":\"" + new string('A', 100)));

        // The writer has not completed: the reader decides on what it has.
        var e = await Assert.ThrowsAsync<RpcException>(() => reader.ReadAsync(None).AsTask());

        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("larger than max (101 vs. 100)", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_unary_body_is_read_up_to_the_end_of_its_first_value_and_no_further()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("""{"key":"YQ=="} trailing garbage {"""));
        var reader = new JsonMessageReader(pipe.Reader, PutRequest.Descriptor, 1 << 20);

        var put = await reader.ReadAsync(None);

        Assert.Equal(new PutRequest { Key = B("a") }, put);
        // The bytes after the value are still in the pipe, unexamined: the writer has not even completed.
        Assert.True(pipe.Reader.TryRead(out var rest));
        Assert.Equal(" trailing garbage {", Encoding.UTF8.GetString(rest.Buffer.ToArray()));
        pipe.Reader.AdvanceTo(rest.Buffer.End);
    }

    [Fact]
    public async Task A_value_is_returned_as_soon_as_its_last_byte_arrives()
    {
        var pipe = new Pipe();
        var reader = new JsonMessageReader(pipe.Reader, WatchRequest.Descriptor, 1 << 20);
        var first = reader.ReadAsync(None);
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("""{"create_request":{"key":"YQ=="}"""));
        Assert.False(first.IsCompleted);

        await pipe.Writer.WriteAsync("}"u8.ToArray());

        Assert.Equal(Create("a"), await first);
    }

    [Fact]
    public async Task A_large_value_arriving_byte_by_byte_is_read_once()
    {
        // Linear: each new byte is scanned once; re-scanning the buffer on every read would take minutes here.
        var value = new string('Q', 400_000);
        var messages = await ReadAll("{\"create_request\":{\"key\":\"" + value + "\"}}", byteByByte: true);

        Assert.Equal(300_000, ((WatchRequest)messages.Single()).CreateRequest.Key.Length);
    }

    [Fact]
    public async Task A_cancelled_read_throws_operation_cancelled()
    {
        var pipe = new Pipe();
        var reader = new JsonMessageReader(pipe.Reader, WatchRequest.Descriptor, 1 << 20);
        using var cancellation = new CancellationTokenSource();
        var read = reader.ReadAsync(cancellation.Token);

        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.AsTask());
    }
}
