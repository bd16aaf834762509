using EtcdShield.Configuration;
using Google.Protobuf.Reflection;

namespace EtcdShield.Encryption;

/// <summary>
/// Fails closed on methods nobody looked at: a method whose request or response can hold a value (an
/// <c>mvccpb.KeyValue</c>, or a bytes field named <c>value</c>, at any depth, through repeated fields, oneofs and
/// maps) is relayed only by a handler that seals and opens it. Judged from the protobuf descriptors the proxy
/// serves, so a method that a newer etcd API adds is found when the proxy is built against it, and the proxy
/// refuses to start instead of relaying its values in plaintext.
/// </summary>
internal static class ValueCoverage
{
    private const string KeyValueMessage = "mvccpb.KeyValue";

    /// <summary>Throws, naming them, when some method that can carry a value has no handler.</summary>
    /// <param name="handled">Whether a method has a value handler.</param>
    public static void Require(IEnumerable<MethodDescriptor> methods, Func<MethodDescriptor, bool> handled)
    {
        var missing = CarryingValues(methods).Where(m => !handled(m)).Select(m => $"{m.Service.Name}/{m.Name}").ToList();
        if (missing.Count > 0)
        {
            throw new ConfigurationException(
                $"etcdshield cannot encrypt {string.Join(", ", missing)}: the method can carry values but no value handler seals and opens them; " +
                "refusing to start rather than relay them in plaintext");
        }
    }

    /// <summary>The methods whose request or response can carry a value.</summary>
    public static IEnumerable<MethodDescriptor> CarryingValues(IEnumerable<MethodDescriptor> methods) =>
        methods.Where(m => CanCarryValue(m.InputType) || CanCarryValue(m.OutputType));

    /// <summary>Whether a value can appear anywhere inside <paramref name="message"/> (a walk over every message type it can contain).</summary>
    public static bool CanCarryValue(MessageDescriptor message)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { message.FullName };
        var pending = new Stack<MessageDescriptor>([message]);
        while (pending.TryPop(out var current))
        {
            if (current.FullName == KeyValueMessage)
            {
                return true;
            }

            foreach (var field in current.Fields.InFieldNumberOrder())
            {
                if (field.FieldType == FieldType.Bytes && field.Name == "value")
                {
                    return true;
                }

                // Map fields are messages too (their entries), so their values are walked like any other field.
                if (field.FieldType is FieldType.Message or FieldType.Group && seen.Add(field.MessageType.FullName))
                {
                    pending.Push(field.MessageType);
                }
            }
        }

        return false;
    }
}
