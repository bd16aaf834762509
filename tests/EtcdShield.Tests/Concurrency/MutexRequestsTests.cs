using EtcdShield.Concurrency;
using Google.Protobuf;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;

namespace EtcdShield.Tests.Concurrency;

public sealed class MutexRequestsTests
{
    private static readonly ByteString Prefix = MutexRequests.Prefix(ByteString.CopyFromUtf8("/app/lock"));
    private static readonly ByteString Owner = ByteString.CopyFromUtf8("/app/lock/2a");
    private static readonly ByteString Sealed = ByteString.CopyFromUtf8("sealed-empty-value");

    [Fact]
    public void Waiters_live_under_the_name_and_a_slash()
    {
        Assert.Equal("/app/lock/", Prefix.ToStringUtf8());
    }

    [Fact]
    public void Acquiring_puts_the_sealed_value_only_if_the_key_does_not_exist_and_reads_the_holder_either_way()
    {
        var txn = MutexRequests.Acquire(Prefix, Owner, Sealed, 0x2a);

        var compare = Assert.Single(txn.Compare);
        Assert.Equal((Owner, CompareTarget.Create, CompareResult.Equal, 0L), (compare.Key, compare.Target, compare.Result, compare.CreateRevision));
        Assert.Equal(2, txn.Success.Count);
        Assert.Equal((Owner, Sealed, 0x2aL), (txn.Success[0].RequestPut.Key, txn.Success[0].RequestPut.Value, txn.Success[0].RequestPut.Lease));
        Assert.Equal(2, txn.Failure.Count);
        Assert.Equal(Owner, txn.Failure[0].RequestRange.Key);
        Assert.True(txn.Failure[0].RequestRange.RangeEnd.IsEmpty);
        Assert.Equal(MutexRequests.Holder(Prefix), txn.Success[1].RequestRange);
        Assert.Equal(MutexRequests.Holder(Prefix), txn.Failure[1].RequestRange);
    }

    [Fact]
    public void The_holder_is_the_oldest_key_under_the_prefix()
    {
        var holder = MutexRequests.Holder(Prefix);

        Assert.Equal(("/app/lock/", "/app/lock0"), (holder.Key.ToStringUtf8(), holder.RangeEnd.ToStringUtf8()));
        Assert.Equal((SortTarget.Create, SortOrder.Ascend, 1L), (holder.SortTarget, holder.SortOrder, holder.Limit));
        Assert.True(holder.KeysOnly);
    }

    [Fact]
    public void The_next_waiter_to_wait_for_is_the_youngest_created_before_the_callers_key()
    {
        var next = MutexRequests.YoungestBefore(Prefix, 41);

        Assert.Equal(("/app/lock/", "/app/lock0"), (next.Key.ToStringUtf8(), next.RangeEnd.ToStringUtf8()));
        Assert.Equal((SortTarget.Create, SortOrder.Descend, 1L, 41L), (next.SortTarget, next.SortOrder, next.Limit, next.MaxCreateRevision));
        Assert.True(next.KeysOnly);
    }

    [Fact]
    public void A_name_of_0xff_bytes_ranges_over_the_keys_after_its_prefix()
    {
        var prefix = MutexRequests.Prefix(ByteString.CopyFrom(0xff));

        Assert.Equal(new byte[] { 0xff, 0x30 }, MutexRequests.Holder(prefix).RangeEnd.ToByteArray());
    }

    [Fact]
    public void The_deletion_is_watched_from_a_revision_at_which_the_key_existed()
    {
        var watch = MutexRequests.WatchFrom(Owner, 77);

        Assert.Equal((Owner, 77L), (watch.CreateRequest.Key, watch.CreateRequest.StartRevision));
        Assert.True(watch.CreateRequest.RangeEnd.IsEmpty);
    }
}
