using System.Security.Cryptography;
using System.Text;
using EtcdShield.Authorization;

namespace EtcdShield.Tests.Authorization;

public sealed class LeaseTagTests
{
    [Fact]
    public void The_tag_is_the_first_23_bits_of_the_sha256_of_the_name()
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes("kube-apiserver"));
        var expected = (hash[0] << 15) | (hash[1] << 7) | (hash[2] >> 1);

        Assert.Equal(expected, LeaseTag.Of("kube-apiserver"));
        Assert.InRange(LeaseTag.Of("kube-apiserver"), 0, (1 << LeaseTag.Bits) - 1);
        Assert.Equal(63, LeaseTag.Bits + LeaseTag.RandomBits);
    }

    [Fact]
    public void A_new_id_is_positive_carries_the_tag_in_its_high_bits_and_is_random_below()
    {
        var tag = LeaseTag.Of("alice");
        var ids = Enumerable.Range(0, 1000).Select(_ => LeaseTag.NewId(tag)).ToList();

        Assert.All(ids, id =>
        {
            Assert.True(id > 0);
            Assert.Equal(tag, (int)(id >> LeaseTag.RandomBits));
            Assert.True(LeaseTag.Carries(id, tag));
            Assert.False(LeaseTag.Carries(id, LeaseTag.Of("mallory")));
        });
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public void The_largest_tag_still_gives_a_positive_id_and_tag_zero_never_gives_id_zero()
    {
        const int largest = (1 << LeaseTag.Bits) - 1;

        Assert.Equal(long.MaxValue, LeaseTag.Compose(largest, -1));
        Assert.True(LeaseTag.Carries(LeaseTag.Compose(largest, 5), largest));
        Assert.All(Enumerable.Range(0, 100), _ => Assert.NotEqual(0, LeaseTag.NewId(0)));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    public void No_tag_is_carried_by_zero_or_a_negative_id(long id)
    {
        Assert.False(LeaseTag.Carries(id, 0));
        Assert.False(LeaseTag.Carries(id, (1 << LeaseTag.Bits) - 1));
    }

    [Fact]
    public void The_bits_below_the_tag_do_not_change_the_owner()
    {
        var tag = LeaseTag.Of("alice");
        var first = LeaseTag.Compose(tag, 1);
        var last = LeaseTag.Compose(tag, (1L << LeaseTag.RandomBits) - 1);

        Assert.True(LeaseTag.Carries(first, tag));
        Assert.True(LeaseTag.Carries(last, tag));
        Assert.False(LeaseTag.Carries(last + 1, tag));
        Assert.False(LeaseTag.Carries(LeaseTag.Compose(tag, 0) - 1, tag));
    }
}
