using System.Buffers;
using System.Text;
using EtcdShield.Gateway;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;

namespace EtcdShield.Tests.Gateway;

/// <summary>
/// The writer against documents Debian's etcd 3.4.23 gateway wrote (captured with curl from a single member
/// named <c>n&lt;&amp;&gt;</c>), rebuilt here as the same messages; and Go's string escaping.
/// </summary>
public sealed class JsonpbWriterTests
{
    private static readonly ResponseHeader Header = new() { ClusterId = 15118495548433857066, MemberId = 13668033151171901709, Revision = 6, RaftTerm = 2 };

    private const string HeaderJson = """{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"6","raft_term":"2"}""";

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static string Json(IMessage message) => Encoding.UTF8.GetString(JsonpbWriter.ToUtf8Bytes(message));

    private static ResponseHeader At(long revision) => new(Header) { Revision = revision };

    private static string HeaderAt(long revision) => HeaderJson.Replace("\"6\"", $"\"{revision}\"", StringComparison.Ordinal);

    [Fact]
    public void A_put_with_prev_kv_is_etcds_document()
    {
        var put = new PutResponse { Header = At(3), PrevKv = new KeyValue { Key = B("foo"), CreateRevision = 2, ModRevision = 2, Version = 1, Value = B("bar") } };

        Assert.Equal("{\"header\":" + HeaderAt(3) + ""","prev_kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}""", Json(put));
    }

    [Fact]
    public void A_range_of_several_keys_a_lease_an_empty_value_more_and_count_is_etcds_document()
    {
        var range = new RangeResponse
        {
            Header = At(5),
            Kvs =
            {
                new KeyValue { Key = B("k1"), CreateRevision = 4, ModRevision = 4, Version = 1, Value = B("v1"), Lease = 1234 },
                new KeyValue { Key = B("k2"), CreateRevision = 5, ModRevision = 5, Version = 1 },
            },
            Count = 2,
        };
        Assert.Equal("{\"header\":" + HeaderAt(5) + ""","kvs":[{"key":"azE=","create_revision":"4","mod_revision":"4","version":"1","value":"djE=","lease":"1234"},{"key":"azI=","create_revision":"5","mod_revision":"5","version":"1"}],"count":"2"}""", Json(range));

        range.Kvs.RemoveAt(1);
        range.More = true;
        Assert.Equal("{\"header\":" + HeaderAt(5) + ""","kvs":[{"key":"azE=","create_revision":"4","mod_revision":"4","version":"1","value":"djE=","lease":"1234"}],"more":true,"count":"2"}""", Json(range));

        Assert.Equal("{\"header\":" + HeaderAt(5) + "}", Json(new RangeResponse { Header = At(5) }));
    }

    [Fact]
    public void A_failed_txn_with_a_nested_txn_is_etcds_document_with_empty_headers_kept()
    {
        var txn = new TxnResponse
        {
            Header = Header,
            Responses =
            {
                new ResponseOp { ResponseRange = new RangeResponse { Header = new ResponseHeader { Revision = 5 }, Kvs = { new KeyValue { Key = B("k1"), CreateRevision = 4, ModRevision = 4, Version = 1, Value = B("v1"), Lease = 1234 } }, Count = 1 } },
                new ResponseOp
                {
                    ResponseTxn = new TxnResponse
                    {
                        Header = new ResponseHeader(),
                        Succeeded = true,
                        Responses = { new ResponseOp { ResponseDeleteRange = new DeleteRangeResponse { Header = new ResponseHeader { Revision = 6 }, Deleted = 1, PrevKvs = { new KeyValue { Key = B("k2"), CreateRevision = 5, ModRevision = 5, Version = 1 } } } } },
                    },
                },
            },
        };

        Assert.Equal("{\"header\":" + HeaderJson + ""","responses":[{"response_range":{"header":{"revision":"5"},"kvs":[{"key":"azE=","create_revision":"4","mod_revision":"4","version":"1","value":"djE=","lease":"1234"}],"count":"1"}},{"response_txn":{"header":{},"succeeded":true,"responses":[{"response_delete_range":{"header":{"revision":"6"},"deleted":"1","prev_kvs":[{"key":"azI=","create_revision":"5","mod_revision":"5","version":"1"}]}}]}}]}""", Json(txn));
    }

    [Fact]
    public void Leases_are_etcds_documents_with_ID_TTL_and_grantedTTL()
    {
        Assert.Equal("{\"header\":" + HeaderAt(3) + ""","ID":"1234","TTL":"300"}""", Json(new LeaseGrantResponse { Header = At(3), ID = 1234, TTL = 300 }));
        Assert.Equal("{\"header\":" + HeaderJson + ""","ID":"1234","TTL":"299","grantedTTL":"300","keys":["azE="]}""", Json(new LeaseTimeToLiveResponse { Header = Header, ID = 1234, TTL = 299, GrantedTTL = 300, Keys = { B("k1") } }));
        Assert.Equal("{\"header\":" + HeaderJson + ""","leases":[{"ID":"1234"}]}""", Json(new LeaseLeasesResponse { Header = Header, Leases = { new LeaseStatus { ID = 1234 } } }));
    }

    [Fact]
    public void Status_and_member_list_are_etcds_documents_with_their_camel_case_proto_names_and_html_escapes()
    {
        var status = new StatusResponse { Header = Header, Version = "3.4.23", DbSize = 20480, Leader = 13668033151171901709, RaftIndex = 10, RaftTerm = 2, RaftAppliedIndex = 10, DbSizeInUse = 16384 };
        Assert.Equal("{\"header\":" + HeaderJson + ""","version":"3.4.23","dbSize":"20480","leader":"13668033151171901709","raftIndex":"10","raftTerm":"2","raftAppliedIndex":"10","dbSizeInUse":"16384"}""", Json(status));

        var members = new MemberListResponse
        {
            Header = new ResponseHeader { ClusterId = Header.ClusterId, MemberId = Header.MemberId, RaftTerm = 2 },
            Members = { new Member { ID = 13668033151171901709, Name = "n<&>", PeerURLs = { "http://127.0.0.1:23801" }, ClientURLs = { "http://127.0.0.1:23791" } } },
        };
        Assert.Equal("""{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","raft_term":"2"},"members":[{"ID":"13668033151171901709","name":"n\u003c\u0026\u003e","peerURLs":["http://127.0.0.1:23801"],"clientURLs":["http://127.0.0.1:23791"]}]}""", Json(members));
    }

    [Fact]
    public void A_member_name_with_every_kind_of_escape_is_etcds_document()
    {
        // Debian's etcd 3.4.23 started with this name; its invalid byte 0xff was already U+FFFD in etcd's store.
        var name = "a\u2028b\u0001c\u007Fd\u00E9e\tf\"g\\h\bi\fj\U0001F600k\uFFFDl";
        var members = new MemberListResponse
        {
            Header = new ResponseHeader { ClusterId = 8140765981764738059, MemberId = 185828541645115251, RaftTerm = 2 },
            Members = { new Member { ID = 185828541645115251, Name = name, PeerURLs = { "http://127.0.0.1:23802" }, ClientURLs = { "http://127.0.0.1:23792" } } },
        };

        Assert.Equal("{\"header\":{\"cluster_id\":\"8140765981764738059\",\"member_id\":\"185828541645115251\",\"raft_term\":\"2\"},\"members\":[{\"ID\":\"185828541645115251\",\"name\":\"a\\u2028b\\u0001c\u007Fd\u00E9e\\tf\\\"g\\\\h\\u0008i\\u000cj\U0001F600k\uFFFDl\",\"peerURLs\":[\"http://127.0.0.1:23802\"],\"clientURLs\":[\"http://127.0.0.1:23792\"]}]}", Json(members));
    }

    [Fact]
    public void Watch_responses_are_etcds_documents_without_type_put_or_watch_id_zero()
    {
        var created = new WatchResponse { Header = Header, Created = true };
        Assert.Equal("{\"header\":" + HeaderJson + ""","created":true}""", Json(created));

        var first = new KeyValue { Key = B("foo"), CreateRevision = 2, ModRevision = 2, Version = 1, Value = B("bar") };
        var events = new WatchResponse
        {
            Header = Header,
            Events =
            {
                new Event { Type = Event.Types.EventType.Put, Kv = first },
                new Event { Kv = new KeyValue { Key = B("foo"), CreateRevision = 2, ModRevision = 3, Version = 2, Value = B("bar2") }, PrevKv = first },
            },
        };
        Assert.Equal("{\"header\":" + HeaderJson + ""","events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}},{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmFyMg=="},"prev_kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}]}""", Json(events));

        Assert.Equal("""{"watch_id":"7","canceled":true,"events":[{"type":"DELETE","kv":{"key":"eA=="}}]}""",
            Json(new WatchResponse { WatchId = 7, Canceled = true, Events = { new Event { Type = Event.Types.EventType.Delete, Kv = new KeyValue { Key = B("x") } } } }));
    }

    [Fact]
    public void A_set_oneof_member_is_written_when_zero_or_empty_and_enums_by_name_with_equal_omitted()
    {
        Assert.Equal("""{"key":"YQ==","version":"0"}""", Json(new Compare { Key = B("a"), Target = Compare.Types.CompareTarget.Version, Version = 0 }));
        Assert.Equal("""{"result":"GREATER","target":"CREATE","key":"YQ==","create_revision":"3"}""", Json(new Compare { Key = B("a"), Result = Compare.Types.CompareResult.Greater, Target = Compare.Types.CompareTarget.Create, CreateRevision = 3 }));
        Assert.Equal("""{"result":"LESS","target":"MOD","mod_revision":"0"}""", Json(new Compare { Result = Compare.Types.CompareResult.Less, Target = Compare.Types.CompareTarget.Mod, ModRevision = 0 }));
        Assert.Equal("""{"result":"NOT_EQUAL","target":"VALUE","value":""}""", Json(new Compare { Result = Compare.Types.CompareResult.NotEqual, Target = Compare.Types.CompareTarget.Value, Value = ByteString.Empty }));
        Assert.Equal("""{"target":"LEASE","lease":"-1"}""", Json(new Compare { Target = Compare.Types.CompareTarget.Lease, Lease = -1 }));
        Assert.Equal("""{"request_range":{}}""", Json(new RequestOp { RequestRange = new RangeRequest() }));
        Assert.Equal("{}", Json(new Compare()));
    }

    [Fact]
    public void A_hash_is_an_unquoted_uint32_as_in_etcds_document()
    {
        Assert.Equal("{\"header\":" + HeaderAt(7) + ""","hash":3297576165}""", Json(new HashResponse { Header = At(7), Hash = 3297576165 }));
    }

    [Fact]
    public void An_enum_number_without_a_name_is_written_bare()
    {
        Assert.Equal("""{"sort_order":7,"sort_target":"MOD"}""", Json(new RangeRequest { SortOrder = (RangeRequest.Types.SortOrder)7, SortTarget = RangeRequest.Types.SortTarget.Mod }));
    }

    [Fact]
    public void Empty_messages_are_empty_objects_and_int32_is_unquoted()
    {
        Assert.Equal("{}", Json(new PutResponse()));
        Assert.Equal("{}", Json(new ResponseHeader()));
        Assert.Equal("""{"alarms":[{"memberID":"1","alarm":"NOSPACE"}]}""", Json(new AlarmResponse { Alarms = { new AlarmMember { MemberID = 1, Alarm = AlarmType.Nospace } } }));
    }

    [Theory]
    [InlineData("plain", "\"plain\"")]
    [InlineData("q\"b\\s/", "\"q\\\"b\\\\s/\"")]
    [InlineData("\n\r\t", "\"\\n\\r\\t\"")]
    [InlineData("\b\f\u0000\u001f", "\"\\u0008\\u000c\\u0000\\u001f\"")]
    [InlineData("<a href='x'>&amp;</a>", "\"\\u003ca href='x'\\u003e\\u0026amp;\\u003c/a\\u003e\"")]
    [InlineData("line\u2028para\u2029", "\"line\\u2028para\\u2029\"")]
    [InlineData("\u007f é ☃ 😀", "\"\u007f é ☃ 😀\"")]
    [InlineData("", "\"\"")]
    public void Strings_are_escaped_as_go_escapes_them(string value, string expected)
    {
        var output = new ArrayBufferWriter<byte>();
        JsonpbWriter.WriteString(value, output);

        Assert.Equal(expected, Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void A_lone_surrogate_is_escaped_as_the_replacement_character_as_go_does_with_invalid_utf8()
    {
        // In a Fact: theory data would not carry a lone surrogate through to the test intact.
        foreach (var (value, expected) in new[] { ("lone \ud800 high", "\"lone \\ufffd high\""), ("lone \udc00 low", "\"lone \\ufffd low\""), ("end \ud83d", "\"end \\ufffd\""), ("\udc00\ud800", "\"\\ufffd\\ufffd\"") })
        {
            var output = new ArrayBufferWriter<byte>();
            JsonpbWriter.WriteString(value, output);

            Assert.Equal(expected, Encoding.UTF8.GetString(output.WrittenSpan));
        }
    }

    [Fact]
    public void A_string_field_uses_the_same_escaping()
    {
        Assert.Equal("""{"members":[{"name":"a\u2028\u003c\u0007\ufffd"}]}""", Json(new MemberListResponse { Members = { new Member { Name = "a\u2028<\u0007\ud800" } } }));
    }

    [Fact]
    public void Write_appends_to_what_the_buffer_holds()
    {
        var output = new ArrayBufferWriter<byte>();
        output.Write("{\"result\":"u8);
        JsonpbWriter.Write(new LeaseKeepAliveResponse { ID = 5, TTL = 10 }, output);

        Assert.Equal("""{"result":{"ID":"5","TTL":"10"}""", Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void Large_bytes_are_standard_padded_base64()
    {
        var bytes = Enumerable.Range(0, 100_001).Select(i => (byte)(i * 7)).ToArray();

        var json = Json(new KeyValue { Value = UnsafeByteOperations.UnsafeWrap(bytes) });

        Assert.Equal("{\"value\":\"" + Convert.ToBase64String(bytes) + "\"}", json);
    }
}
