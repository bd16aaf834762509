using System.Runtime.InteropServices;
using System.Text;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// A CK_ATTRIBUTE template being built: the attributes' values are copied into one buffer that is pinned only for
/// the call that reads them. Values that are secret (a data key) are never copied in: <see cref="AddPinned"/> points
/// the attribute at an array the caller pinned and zeroes.
/// </summary>
internal sealed class AttributeTemplate
{
    private readonly List<(CKA Type, int Offset, int Length, byte[]? Pinned)> _entries = [];
    private byte[] _values = new byte[128];
    private int _used;

    public int Count => _entries.Count;

    public AttributeTemplate Add(CKA type, ulong value)
    {
        // CK_ULONG values are read in place by the module, so they are kept at 8-byte offsets.
        _used = (_used + 7) & ~7;
        MemoryMarshal.Write(Reserve(type, sizeof(ulong)), in value);
        return this;
    }

    public AttributeTemplate Add(CKA type, CKO value) => Add(type, (ulong)value);

    public AttributeTemplate Add(CKA type, CKK value) => Add(type, (ulong)value);

    /// <summary>A CK_BBOOL: one byte, CK_TRUE or CK_FALSE.</summary>
    public AttributeTemplate Add(CKA type, bool value)
    {
        Reserve(type, 1)[0] = value ? (byte)1 : (byte)0;
        return this;
    }

    /// <summary>A UTF-8 string without a terminator (CKA_LABEL).</summary>
    public AttributeTemplate Add(CKA type, string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        Encoding.UTF8.GetBytes(value, Reserve(type, length));
        return this;
    }

    /// <summary>An attribute whose value is <paramref name="pinned"/> itself (allocated pinned), never copied.</summary>
    public AttributeTemplate AddPinned(CKA type, byte[] pinned)
    {
        _entries.Add((type, 0, pinned.Length, pinned));
        return this;
    }

    /// <summary>Fills <paramref name="attributes"/> for a call; <paramref name="values"/> is the pinned address of <see cref="Values"/>.</summary>
    public unsafe void Fill(Span<CkAttribute> attributes, byte* values)
    {
        for (int i = 0; i < _entries.Count; i++)
        {
            (CKA type, int offset, int length, byte[]? pinned) = _entries[i];
            attributes[i] = new CkAttribute
            {
                Type = (ulong)type,
                Value = pinned is null
                    ? (nint)(values + offset)
                    : Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0),
                ValueLength = (ulong)length,
            };
        }
    }

    /// <summary>The buffer of copied values, to pin for the call.</summary>
    public byte[] Values => _values;

    private Span<byte> Reserve(CKA type, int length)
    {
        if (_used + length > _values.Length)
        {
            Array.Resize(ref _values, Math.Max(_values.Length * 2, _used + length));
        }

        int offset = _used;
        _used += length;
        _entries.Add((type, offset, length, null));
        return _values.AsSpan(offset, length);
    }
}
