using System.Diagnostics.Metrics;
using System.Reflection;
using System.Reflection.Emit;

namespace EtcdShield.Tests.Architecture;

/// <summary>
/// Which top-level folders of src/EtcdShield use which, read from the compiled assembly rather than from
/// <c>using</c> lines (which miss fully qualified names and list namespaces nothing uses). A folder is the first
/// namespace segment after "EtcdShield."; a nested or compiler-generated type (lambdas, async state machines,
/// logging source generators) counts for its outermost declaring type. A type uses everything in its signatures
/// (base type, interfaces, fields, properties, methods, generic arguments and constraints, attributes), its
/// locals, and every type, method and field token its IL names. Constants are the one use this cannot see: the
/// compiler copies their values into the IL, so a folder that only reads another's <c>const</c> is not counted.
/// </summary>
internal static class FolderGraph
{
    private const BindingFlags Declared =
        BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;

    private static readonly OpCode[] OneByte = new OpCode[256];
    private static readonly OpCode[] TwoByte = new OpCode[256];

    static FolderGraph()
    {
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var code = (OpCode)field.GetValue(null)!;
            var value = (ushort)code.Value;
            if (code.Size == 1)
            {
                OneByte[value] = code;
            }
            else
            {
                TwoByte[value & 0xFF] = code;
            }
        }
    }

    /// <summary>The edges "from → to" between distinct folders of <paramref name="assembly"/>.</summary>
    public static SortedSet<(string From, string To)> Of(Assembly assembly)
    {
        var edges = new SortedSet<(string, string)>();
        foreach (var type in assembly.GetTypes())
        {
            if (FolderOf(type, assembly) is not { } from)
            {
                continue;
            }

            var used = new HashSet<Type>();
            CollectSignatures(type, used);
            foreach (var to in used.Select(t => FolderOf(t, assembly)).OfType<string>().Where(to => to != from))
            {
                edges.Add((from, to));
            }
        }

        return edges;
    }

    /// <summary>
    /// The folder of a type, or null for types outside any folder: other assemblies, and the entry point
    /// (top-level statements in the global namespace, which only dispatch to Hosting and Migration).
    /// </summary>
    private static string? FolderOf(Type type, Assembly assembly)
    {
        if (type.Assembly != assembly || type.IsGenericParameter)
        {
            return null;
        }

        while (type.DeclaringType is { } outer)
        {
            type = outer;
        }

        const string Root = "EtcdShield.";
        var ns = type.Namespace;
        if (ns is null || !ns.StartsWith(Root, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = ns[Root.Length..];
        var dot = rest.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? rest : rest[..dot];
    }

    private static void CollectSignatures(Type type, HashSet<Type> used)
    {
        Add(type.BaseType, used);
        foreach (var face in type.GetInterfaces())
        {
            Add(face, used);
        }

        AddGenericParameters(type.IsGenericTypeDefinition ? type.GetGenericArguments() : [], used);
        AddAttributes(type.CustomAttributes, used);
        foreach (var field in type.GetFields(Declared))
        {
            Add(field.FieldType, used);
            AddAttributes(field.CustomAttributes, used);
        }

        foreach (var property in type.GetProperties(Declared))
        {
            Add(property.PropertyType, used);
            AddAttributes(property.CustomAttributes, used);
        }

        foreach (var evt in type.GetEvents(Declared))
        {
            Add(evt.EventHandlerType, used);
        }

        foreach (var method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            if (method is MethodInfo info)
            {
                Add(info.ReturnType, used);
                if (info.IsGenericMethodDefinition)
                {
                    AddGenericParameters(info.GetGenericArguments(), used);
                }
            }

            AddAttributes(method.CustomAttributes, used);
            foreach (var parameter in method.GetParameters())
            {
                Add(parameter.ParameterType, used);
                AddAttributes(parameter.CustomAttributes, used);
            }

            if (method.GetMethodBody() is { } body)
            {
                foreach (var local in body.LocalVariables)
                {
                    Add(local.LocalType, used);
                }

                ScanIl(method, member => AddMember(member, used));
            }
        }
    }

    /// <summary>
    /// For each folder, the outermost types whose code creates a meter (calls <see cref="IMeterFactory.Create"/>
    /// or the <see cref="MeterFactoryExtensions"/> overloads).
    /// </summary>
    public static Dictionary<string, SortedSet<Type>> MeterOwners(Assembly assembly)
    {
        var owners = new Dictionary<string, SortedSet<Type>>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes())
        {
            if (FolderOf(type, assembly) is not { } folder)
            {
                continue;
            }

            var outermost = type;
            while (outermost.DeclaringType is { } outer)
            {
                outermost = outer;
            }

            foreach (var method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
            {
                ScanIl(method, member =>
                {
                    if (member is MethodBase { Name: nameof(IMeterFactory.Create) } called &&
                        (called.DeclaringType == typeof(IMeterFactory) || called.DeclaringType == typeof(MeterFactoryExtensions)))
                    {
                        if (!owners.TryGetValue(folder, out var set))
                        {
                            owners[folder] = set = new SortedSet<Type>(Comparer<Type>.Create((a, b) => string.CompareOrdinal(a.FullName, b.FullName)));
                        }

                        set.Add(outermost);
                    }
                });
            }
        }

        return owners;
    }

    private static void ScanIl(MethodBase method, Action<MemberInfo?> visit)
    {
        var il = method.GetMethodBody()?.GetILAsByteArray() ?? [];
        var typeArguments = method.DeclaringType is { IsGenericType: true } declaring ? declaring.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        var at = 0;
        while (at < il.Length)
        {
            var code = il[at] == 0xFE ? TwoByte[il[++at]] : OneByte[il[at]];
            at++;
            switch (code.OperandType)
            {
                case OperandType.InlineMethod:
                case OperandType.InlineField:
                case OperandType.InlineType:
                case OperandType.InlineTok:
                    visit(method.Module.ResolveMember(BitConverter.ToInt32(il, at), typeArguments, methodArguments));
                    at += 4;
                    break;
                case OperandType.InlineSwitch:
                    at += 4 + (4 * BitConverter.ToInt32(il, at));
                    break;
                default:
                    at += OperandSize(code.OperandType);
                    break;
            }
        }
    }

    private static int OperandSize(OperandType operand) => operand switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4,
    };

    private static void AddMember(MemberInfo? member, HashSet<Type> used)
    {
        switch (member)
        {
            case Type type:
                Add(type, used);
                break;
            case FieldInfo field:
                Add(field.DeclaringType, used);
                Add(field.FieldType, used);
                break;
            case MethodBase method:
                Add(method.DeclaringType, used);
                if (method is MethodInfo info)
                {
                    Add(info.ReturnType, used);
                    if (info.IsGenericMethod)
                    {
                        foreach (var argument in info.GetGenericArguments())
                        {
                            Add(argument, used);
                        }
                    }
                }

                foreach (var parameter in method.GetParameters())
                {
                    Add(parameter.ParameterType, used);
                }

                break;
        }
    }

    private static void AddAttributes(IEnumerable<CustomAttributeData> attributes, HashSet<Type> used)
    {
        foreach (var attribute in attributes)
        {
            Add(attribute.AttributeType, used);
            foreach (var argument in attribute.ConstructorArguments.Concat(attribute.NamedArguments.Select(a => a.TypedValue)))
            {
                if (argument.Value is Type typeArgument)
                {
                    Add(typeArgument, used);
                }
            }
        }
    }

    private static void AddGenericParameters(Type[] parameters, HashSet<Type> used)
    {
        foreach (var parameter in parameters)
        {
            foreach (var constraint in parameter.GetGenericParameterConstraints())
            {
                Add(constraint, used);
            }
        }
    }

    /// <summary>A type and everything it is built from: element types of arrays, by-refs and pointers, generic arguments.</summary>
    private static void Add(Type? type, HashSet<Type> used)
    {
        while (type is not null && (type.HasElementType))
        {
            type = type.GetElementType();
        }

        if (type is null || type.IsGenericParameter || !used.Add(type))
        {
            return;
        }

        if (type.IsGenericType)
        {
            foreach (var argument in type.GetGenericArguments())
            {
                Add(argument, used);
            }
        }

        Add(type.DeclaringType, used);
    }
}
