using System.Buffers;
using EtcdShield.Api;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// One etcd RPC the proxy relays, described once from the generated protobuf descriptors. The same method
/// definitions serve both sides: they are registered with the server and invoked on the upstream channel, either
/// with parsed messages (<see cref="Method"/>) or as the bytes on the wire (<see cref="Bytes"/>).
/// </summary>
internal sealed class RelayedMethod
{
    public RelayedMethod(MethodDescriptor descriptor)
    {
        Descriptor = descriptor;
        Type = (descriptor.IsClientStreaming, descriptor.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (false, true) => MethodType.ServerStreaming,
            (true, false) => MethodType.ClientStreaming,
            (true, true) => MethodType.DuplexStreaming,
        };
        Method = new Method<IMessage, IMessage>(
            Type,
            descriptor.Service.FullName,
            descriptor.Name,
            MarshallerFor(descriptor.InputType, ClientRequest),
            MarshallerFor(descriptor.OutputType, EtcdResponse));
        Bytes = new Method<byte[], byte[]>(Type, descriptor.Service.FullName, descriptor.Name, RawBytes, RawBytes);
        Name = EtcdApi.NameOf(descriptor);
    }

    /// <summary>Every method of <see cref="EtcdApi"/>, as the relay registers and forwards it.</summary>
    public static IEnumerable<RelayedMethod> All() => EtcdApi.Methods.Select(m => new RelayedMethod(m));

    public MethodDescriptor Descriptor { get; }

    public MethodType Type { get; }

    public Method<IMessage, IMessage> Method { get; }

    /// <summary>The method with its messages left as bytes, for methods no part of the proxy needs to read.</summary>
    public Method<byte[], byte[]> Bytes { get; }

    /// <summary>Short name used in policies, metrics and logs, e.g. <c>KV/Range</c>.</summary>
    public string Name { get; }

    /// <summary>
    /// A stream on which the proxy itself answers (a refused watch, a keep-alive of a lease the caller does not
    /// own) besides relaying etcd, so that writes to the client take turns; and a watch stream, where the proxy
    /// also writes to etcd (the cancellation of a watch no longer allowed).
    /// </summary>
    public bool AnswersOnStream => IsWatch || Name == "Lease/LeaseKeepAlive";

    /// <summary>A watch stream: its client may add and cancel watches on ranges while it is open.</summary>
    public bool IsWatch => Name == "Watch/Watch";

    /// <summary>The method definition for <typeparamref name="T"/>: parsed messages (<see cref="IMessage"/>) or bytes.</summary>
    public Method<T, T> As<T>()
        where T : class =>
        typeof(T) == typeof(byte[]) ? (Method<T, T>)(object)Bytes
        : typeof(T) == typeof(IMessage) ? (Method<T, T>)(object)Method
        : throw new InvalidOperationException($"{Name} is relayed as parsed messages or as bytes, not as {typeof(T).Name}");

    private static readonly Marshaller<byte[]> RawBytes = Marshallers.Create(
        (byte[] message, SerializationContext context) => context.Complete(message),
        context => context.PayloadAsNewBuffer());

    /// <summary>
    /// Parses a client's request (the server side is the only one that deserializes requests). A message that
    /// does not parse, including one nested deeper than Google.Protobuf's recursion limit of 100 (a Txn nested
    /// about 50 deep), is answered as etcd's grpc-go server answers an unparsable request, INTERNAL "grpc: error
    /// unmarshalling request", instead of surfacing as an unexpected server error that a client could use to
    /// fill the error log.
    /// </summary>
    private static IMessage ClientRequest(MessageParser parser, ReadOnlySequence<byte> payload)
    {
        try
        {
            return parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new RpcException(new Status(StatusCode.Internal, "grpc: error unmarshalling request: " + e.Message));
        }
    }

    /// <summary>Parses etcd's answer; a failure there is the proxy's or etcd's fault and is reported as such.</summary>
    private static IMessage EtcdResponse(MessageParser parser, ReadOnlySequence<byte> payload) => parser.ParseFrom(payload);

    private static Marshaller<IMessage> MarshallerFor(MessageDescriptor message, Func<MessageParser, ReadOnlySequence<byte>, IMessage> parse)
    {
        var parser = message.Parser;
        return Marshallers.Create<IMessage>(
            (value, context) =>
            {
                context.SetPayloadLength(value.CalculateSize());
                if (value is EncodedMessage encoded)
                {
                    encoded.WriteTo(context.GetBufferWriter());
                }
                else
                {
                    value.WriteTo(context.GetBufferWriter());
                }

                context.Complete();
            },
            context => parse(parser, context.PayloadAsReadOnlySequence()));
    }
}
