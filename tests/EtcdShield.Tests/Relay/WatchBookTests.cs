using System.Text;
using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;

namespace EtcdShield.Tests.Relay;

public sealed class WatchBookTests
{
    private static readonly KeyRange Secret = KeyRange.Prefix(B("/secret/"));
    private static readonly KeyRange Open = KeyRange.Prefix(B("/open/"));

    private static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    private static string? Nothing(KeyRange range) => null;

    private static string? NoSecrets(KeyRange range) => range.Start.AsSpan().StartsWith(B("/secret/")) ? "denied" : null;

    private static WatchOutcome Screen(WatchBook book, WatchResponse response, Func<KeyRange, string?>? refusal = null) =>
        book.Screen(response, refusal ?? Nothing, out _);

    private static WatchResponse Created(long id) => new() { WatchId = id, Created = true };

    private static WatchResponse Event(long id) => new() { WatchId = id, Events = { new Protocol.Mvccpb.Event() } };

    private static WatchResponse Cancelled(long id) => new() { WatchId = id, Canceled = true };

    [Fact]
    public void Learns_etcd_assigned_ids_from_the_created_responses_in_order_and_revokes_by_range()
    {
        var book = new WatchBook();
        Assert.Null(book.Creating(Secret));
        Assert.Null(book.Creating(Open));
        Assert.Equal(WatchOutcome.Forward, Screen(book, Created(0)));
        Assert.Equal(WatchOutcome.Forward, Screen(book, Created(1)));

        var revoked = book.Revoke(NoSecrets);

        Assert.Equal([(0L, "denied")], revoked);
        Assert.Equal(WatchOutcome.Drop, Screen(book, Event(0)));
        Assert.Equal(WatchOutcome.Forward, Screen(book, Event(1)));
        Assert.Empty(book.Revoke(NoSecrets));
        // etcd's confirmation of the proxy's cancel is not the client's to see; after it the watch is gone.
        Assert.Equal(WatchOutcome.Drop, Screen(book, Cancelled(0)));
        Assert.Equal(1, book.Count);
    }

    [Fact]
    public void A_create_confirmed_after_its_range_became_forbidden_is_cancelled_and_its_events_dropped()
    {
        var book = new WatchBook();
        book.Creating(Secret);

        Assert.Equal(WatchOutcome.Cancel, book.Screen(Created(7), NoSecrets, out var reason));

        Assert.Equal("denied", reason);
        Assert.Equal(WatchOutcome.Drop, Screen(book, Event(7)));
        Assert.Equal(WatchOutcome.Drop, Screen(book, Cancelled(7)));
        Assert.Equal(0, book.Count);
    }

    [Fact]
    public void Creates_etcd_refuses_and_watches_the_client_or_etcd_cancels_leave_the_book()
    {
        var book = new WatchBook();
        book.Creating(Secret);
        book.Creating(Open);

        // etcd refuses a duplicate id with id -1, created and cancelled at once.
        Assert.Equal(WatchOutcome.Forward, Screen(book, new WatchResponse { WatchId = -1, Created = true, Canceled = true, CancelReason = "duplicate" }));
        Assert.Equal(WatchOutcome.Forward, Screen(book, Created(3)));
        Assert.Equal(1, book.Count);
        Assert.Equal(WatchOutcome.Forward, Screen(book, new WatchResponse { WatchId = 3, Canceled = true, CompactRevision = 9 }));

        Assert.Equal(0, book.Count);
        Assert.Empty(book.Revoke(_ => "denied"));
    }

    [Fact]
    public void A_confirmation_of_a_create_the_proxy_never_sent_is_cancelled()
    {
        var book = new WatchBook();

        Assert.Equal(WatchOutcome.Cancel, book.Screen(Created(4), Nothing, out var reason));

        Assert.Contains("did not ask for", reason, StringComparison.Ordinal);
        Assert.Equal(WatchOutcome.Drop, Screen(book, Event(4)));
    }

    [Fact]
    public void Holds_at_most_the_limit_of_watches_and_takes_more_when_some_are_gone()
    {
        var book = new WatchBook();
        for (var i = 0; i < WatchBook.MaxWatches; i++)
        {
            Assert.Null(book.Creating(Open));
        }

        Assert.Contains("too many watches", book.Creating(Open), StringComparison.Ordinal);
        Screen(book, Created(0));
        Screen(book, Cancelled(0));
        Assert.Null(book.Creating(Open));
    }

    [Fact]
    public void Holds_at_most_the_limit_of_key_bytes()
    {
        var book = new WatchBook();
        var huge = KeyRange.Prefix(new byte[1024 * 1024]);
        var taken = 0;
        while (book.Creating(huge) is null)
        {
            taken++;
        }

        Assert.True(taken * 2L * 1024 * 1024 <= WatchBook.MaxKeyBytes);
        Assert.Contains("too many key bytes", book.Creating(huge), StringComparison.Ordinal);
        Screen(book, new WatchResponse { WatchId = -1, Created = true, Canceled = true });
        Assert.Null(book.Creating(huge));
    }

    [Fact]
    public void Revoking_asks_once_per_open_watch()
    {
        var book = new WatchBook();
        for (var i = 0; i < 1000; i++)
        {
            book.Creating(i % 2 == 0 ? Secret : Open);
            Screen(book, Created(i));
        }

        var asked = 0;
        var revoked = book.Revoke(range =>
        {
            asked++;
            return NoSecrets(range);
        });

        Assert.Equal(1000, asked);
        Assert.Equal(500, revoked.Count);
        Assert.All(revoked, r => Assert.Equal(0, r.WatchId % 2));
    }
}
