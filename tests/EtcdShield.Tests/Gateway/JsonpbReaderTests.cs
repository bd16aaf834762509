using System.Text;
using EtcdShield.Gateway;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace EtcdShield.Tests.Gateway;

/// <summary>
/// The reader as etcd 3.4.23's gateway reads requests (each Go behaviour below was checked against it with
/// curl: both names, numbers in strings, the last key winning, the JSON name beating the proto name, null).
/// </summary>
public sealed class JsonpbReaderTests
{
    private static T Read<T>(string json)
        where T : IMessage<T>, new() => (T)JsonpbReader.Read(new T().Descriptor, Encoding.UTF8.GetBytes(json));

    private static string Refused<T>(string json)
        where T : IMessage<T>, new()
    {
        var e = Assert.Throws<RpcException>(() => Read<T>(json));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        return e.Status.Detail;
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact]
    public void Proto_names_and_json_names_are_both_read()
    {
        var proto = Read<RangeRequest>("""{"key":"YQ==","range_end":"Yg==","count_only":true,"min_mod_revision":"3","sort_order":"DESCEND"}""");
        var json = Read<RangeRequest>("""{"key":"YQ==","rangeEnd":"Yg==","countOnly":true,"minModRevision":3,"sortOrder":2}""");

        var expected = new RangeRequest { Key = B("a"), RangeEnd = B("b"), CountOnly = true, MinModRevision = 3, SortOrder = RangeRequest.Types.SortOrder.Descend };
        Assert.Equal(expected, proto);
        Assert.Equal(expected, json);
        Assert.Equal(new LeaseGrantRequest { TTL = 30, ID = 7 }, Read<LeaseGrantRequest>("""{"TTL":30,"ID":"7"}"""));
    }

    [Fact]
    public void Names_are_case_sensitive_and_unknown_names_are_ignored_at_any_depth()
    {
        var put = Read<PutRequest>("""{"Key":"YQ==","key":"Yg==","nope":{"deep":[1,{"x":null}]},"value":"dg==","extra":"!!!"}""");

        Assert.Equal(new PutRequest { Key = B("b"), Value = B("v") }, put);
        Assert.Equal(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B("k") } } } },
            Read<TxnRequest>("""{"success":[{"request_put":{"key":"aw==","unknown":[true]}}]}"""));
    }

    [Fact]
    public void An_escaped_key_names_the_field_it_unescapes_to()
    {
        Assert.Equal(new PutRequest { Key = B("k") }, Read<PutRequest>("""{"\u006bey":"aw=="}"""));
    }

    [Fact]
    public void Null_leaves_a_field_unset_and_a_null_body_is_the_empty_message()
    {
        Assert.Equal(new RangeRequest(), Read<RangeRequest>("""{"key":null,"limit":null,"keys_only":null,"sort_order":null}"""));
        Assert.Equal(new TxnRequest(), Read<TxnRequest>("""{"compare":null,"success":null}"""));
        Assert.Equal(new WatchRequest(), Read<WatchRequest>("""{"create_request":null}"""));
        Assert.Equal(new RangeRequest(), Read<RangeRequest>("null"));
        Assert.Equal(new RangeRequest(), Read<RangeRequest>(" \n"));
        Assert.Equal(new RangeRequest(), Read<RangeRequest>("{}"));
    }

    [Fact]
    public void A_null_scalar_oneof_member_is_set_to_zero_as_go_sets_it()
    {
        var compare = Read<Compare>("""{"target":"VERSION","version":null}""");

        Assert.Equal(Compare.TargetUnionOneofCase.Version, compare.TargetUnionCase);
        Assert.Equal(0, compare.Version);
    }

    [Fact]
    public void Integers_are_numbers_or_strings_holding_one()
    {
        Assert.Equal(5, Read<RangeRequest>("""{"limit":"5"}""").Limit);
        Assert.Equal(5, Read<RangeRequest>("""{"limit":" 5 "}""").Limit);
        Assert.Equal(0, Read<RangeRequest>("""{"limit":"-0"}""").Limit);
        Assert.Equal(0, Read<RangeRequest>("""{"limit":"null"}""").Limit);
        Assert.Equal(long.MinValue, Read<RangeRequest>("""{"revision":-9223372036854775808}""").Revision);
        Assert.Equal(ulong.MaxValue, Read<MemberRemoveRequest>("""{"ID":"18446744073709551615"}""").ID);
        Assert.Equal(AlarmRequest.Types.AlarmAction.Activate, Read<AlarmRequest>("""{"action":1}""").Action);
    }

    [Theory]
    [InlineData("""{"limit":1.0}""", "limit")]
    [InlineData("""{"limit":"1e0"}""", "limit")]
    [InlineData("""{"limit":1e3}""", "limit")]
    [InlineData("""{"limit":"01"}""", "limit")]
    [InlineData("""{"limit":""}""", "limit")]
    [InlineData("""{"limit":"x"}""", "limit")]
    [InlineData("""{"limit":"\u0031"}""", "limit")]
    [InlineData("""{"limit":"1 2"}""", "limit")]
    [InlineData("""{"limit":true}""", "limit")]
    [InlineData("""{"limit":[1]}""", "limit")]
    [InlineData("""{"limit":9223372036854775808}""", "limit")]
    [InlineData("""{"limit":"-9223372036854775809"}""", "limit")]
    [InlineData("""{"limit":123456789012345678901234567890}""", "limit")]
    public void Integers_go_refuses_are_refused_naming_the_field(string json, string field)
    {
        Assert.Contains(field, Refused<RangeRequest>(json), StringComparison.Ordinal);
    }

    [Fact]
    public void Unsigned_and_32_bit_integers_are_range_checked()
    {
        Assert.Contains("ID", Refused<MemberRemoveRequest>("""{"ID":-1}"""), StringComparison.Ordinal);
        Assert.Contains("ID", Refused<MemberRemoveRequest>("""{"ID":"-0"}"""), StringComparison.Ordinal);
        Assert.Contains("ID", Refused<MemberRemoveRequest>("""{"ID":18446744073709551616}"""), StringComparison.Ordinal);
        Assert.Contains("action", Refused<AlarmRequest>("""{"action":2147483648}"""), StringComparison.Ordinal);
    }

    [Fact]
    public void The_error_names_the_field_and_repeats_only_a_few_dozen_bytes()
    {
        Assert.Equal("invalid value for int64 field create_revision: \"x\"", Refused<Compare>("""{"create_revision":"x"}"""));

        var message = Refused<Compare>("{\"create_revision\":\"" + new string('9', 5000) + "\"}");
        Assert.Contains("create_revision", message, StringComparison.Ordinal);
        Assert.True(message.Length < 120, message);
    }

    [Fact]
    public void Enums_are_names_or_numbers_and_unknown_numbers_are_kept()
    {
        Assert.Equal(Compare.Types.CompareTarget.Mod, Read<Compare>("""{"target":"MOD"}""").Target);
        Assert.Equal(Compare.Types.CompareTarget.Lease, Read<Compare>("""{"target":4}""").Target);
        Assert.Equal((Compare.Types.CompareTarget)99, Read<Compare>("""{"target":99}""").Target);
        Assert.Contains("sort_order", Refused<RangeRequest>("""{"sort_order":"1"}"""), StringComparison.Ordinal);
        Assert.Contains("target", Refused<Compare>("""{"target":"mod"}"""), StringComparison.Ordinal);
        Assert.Contains("target", Refused<Compare>("""{"target":"\u004dOD"}"""), StringComparison.Ordinal);
        Assert.Contains("target", Refused<Compare>("""{"target":true}"""), StringComparison.Ordinal);
        Assert.Contains("target", Refused<Compare>("""{"target":1.5}"""), StringComparison.Ordinal);
    }

    [Fact]
    public void Bools_are_only_true_or_false_and_strings_only_strings()
    {
        Assert.True(Read<RangeRequest>("""{"keys_only":true}""").KeysOnly);
        Assert.Contains("keys_only", Refused<RangeRequest>("""{"keys_only":"true"}"""), StringComparison.Ordinal);
        Assert.Contains("keys_only", Refused<RangeRequest>("""{"keys_only":1}"""), StringComparison.Ordinal);
        Assert.Equal("n\u2028é\n", Read<AuthUserAddRequest>("""{"name":"n\u2028é\n"}""").Name);
        Assert.Contains("name", Refused<AuthUserAddRequest>("""{"name":5}"""), StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_utf8_and_lone_surrogate_escapes_become_the_replacement_character_as_in_go()
    {
        Assert.Equal("\ufffdx\ufffd", Read<AuthUserAddRequest>("""{"name":"\ud800x\udc00"}""").Name);
        Assert.Equal("😀", Read<AuthUserAddRequest>("""{"name":"\ud83d\ude00"}""").Name);
        var invalid = JsonpbReader.Read(AuthUserAddRequest.Descriptor, [.. "{\"name\":\"a"u8, 0xff, .. "\"}"u8]);
        Assert.Equal("a\ufffd", ((AuthUserAddRequest)invalid).Name);
    }

    [Fact]
    public void Bytes_are_padded_standard_base64_with_newlines_skipped()
    {
        Assert.Equal(B("a"), Read<PutRequest>("""{"key":"YQ=="}""").Key);
        Assert.Equal(B("ab"), Read<PutRequest>("""{"key":"YWI="}""").Key);
        Assert.Equal(B("abc"), Read<PutRequest>("""{"key":"YW\r\nJj\n"}""").Key);
        Assert.Equal(B("a"), Read<PutRequest>("""{"key":"YQ\u003d\u003d"}""").Key);
        Assert.Equal(new byte[] { 0xfb, 0xff }, Read<PutRequest>("""{"key":"+/8="}""").Key.ToByteArray());
        Assert.Equal(B("a"), Read<PutRequest>("""{"key":"YR=="}""").Key);
        Assert.Equal(ByteString.Empty, Read<PutRequest>("""{"key":""}""").Key);
    }

    [Theory]
    [InlineData("YQ")]
    [InlineData("YQ=")]
    [InlineData("YWJ")]
    [InlineData("-_8=")]
    [InlineData("YQ== ")]
    [InlineData(" YQ==")]
    [InlineData("Y Q==")]
    [InlineData("YQ\\t==")]
    [InlineData("YQ==YQ==")]
    [InlineData("Y===")]
    [InlineData("====")]
    [InlineData("=")]
    [InlineData("YWJj=")]
    [InlineData("YQ=A")]
    [InlineData("Y=Q=")]
    [InlineData("YWJjYQ=A")]
    [InlineData("secret-value!")]
    public void Bad_base64_is_refused_naming_the_field_without_its_content(string text)
    {
        var message = Refused<PutRequest>("{\"value\":\"" + text + "\"}");

        Assert.Contains("value", message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_last_of_a_repeated_key_wins_and_earlier_values_are_never_interpreted()
    {
        Assert.Equal(1, Read<RangeRequest>("""{"limit":"x","limit":1}""").Limit);
        Assert.Contains("limit", Refused<RangeRequest>("""{"limit":1,"limit":"x"}"""), StringComparison.Ordinal);

        var txn = Read<TxnRequest>("""{"success":[{"request_put":{"key":"YQ=="}},{}],"success":[{"request_range":{"key":"Yg=="}}]}""");
        Assert.Equal(new TxnRequest { Success = { new RequestOp { RequestRange = new RangeRequest { Key = B("b") } } } }, txn);

        var watch = Read<WatchRequest>("""{"create_request":{"key":"YQ==","prev_kv":true},"create_request":{"range_end":"Yg=="}}""");
        Assert.Equal(new WatchRequest { CreateRequest = new WatchCreateRequest { RangeEnd = B("b") } }, watch);
    }

    [Fact]
    public void The_json_name_wins_over_the_proto_name_whatever_their_order()
    {
        Assert.Equal(B("b"), Read<RangeRequest>("""{"rangeEnd":"Yg==","range_end":"!!"}""").RangeEnd);
        Assert.Equal(B("b"), Read<RangeRequest>("""{"range_end":"!!","rangeEnd":"Yg=="}""").RangeEnd);
    }

    [Fact]
    public void Two_members_of_one_oneof_are_refused()
    {
        Assert.Contains("target_union", Refused<Compare>("""{"version":1,"value":"YQ=="}"""), StringComparison.Ordinal);
        Assert.Contains("request", Refused<RequestOp>("""{"request_range":{},"requestPut":{}}"""), StringComparison.Ordinal);
        Assert.Equal(new RequestOp { RequestPut = new PutRequest() }, Read<RequestOp>("""{"request_range":null,"request_put":{}}"""));
        Assert.Contains("target_union", Refused<Compare>("""{"target_union":{"version":1}}"""), StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_shapes_are_refused_naming_the_field()
    {
        Assert.Contains("header", Refused<ResponseHeader>("[]") + Refused<PutResponse>("""{"header":5}"""), StringComparison.Ordinal);
        Assert.Contains("compare", Refused<TxnRequest>("""{"compare":{}}"""), StringComparison.Ordinal);
        Assert.Contains("compare", Refused<TxnRequest>("""{"compare":[null]}"""), StringComparison.Ordinal);
        Assert.Contains("compare", Refused<TxnRequest>("""{"compare":[5]}"""), StringComparison.Ordinal);
        Assert.Contains("peerURLs", Refused<MemberAddRequest>("""{"peerURLs":"http://a"}"""), StringComparison.Ordinal);
        Assert.Equal(new MemberAddRequest { PeerURLs = { "", "b" } }, Read<MemberAddRequest>("""{"peerURLs":[null,"b"]}"""));
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("5")]
    [InlineData("\"x\"")]
    [InlineData("{")]
    [InlineData("{\"key\":}")]
    [InlineData("{\"key\":\"YQ==\",}")]
    [InlineData("{'key':1}")]
    [InlineData("{} {}")]
    [InlineData("{\"key\":\"a\u0001\"}")]
    [InlineData("{/*c*/}")]
    [InlineData("nul")]
    public void Bodies_that_are_not_one_json_object_are_refused(string json)
    {
        Refused<PutRequest>(json);
    }

    [Fact]
    public void Nesting_deeper_than_the_limit_is_refused_and_never_overflows_the_stack()
    {
        static string Txn(int depth) => depth == 0 ? "{}" : "{\"success\":[{\"request_txn\":" + Txn(depth - 1) + "}]}";

        var ok = Read<TxnRequest>(Txn(20));
        var innermost = ok;
        for (var i = 0; i < 20; i++)
        {
            innermost = innermost.Success[0].RequestTxn;
        }

        Assert.NotNull(innermost);
        Assert.Contains("depth", Refused<TxnRequest>(Txn(30)), StringComparison.Ordinal);
        Refused<PutRequest>(new string('[', 100_000));
        Refused<PutRequest>("{\"x\":" + string.Concat(Enumerable.Repeat("{\"x\":", 100_000)));
    }

    [Fact]
    public void A_message_read_within_the_limit_parses_again_under_protobufs_recursion_limit()
    {
        static string Txn(int depth) => depth == 0 ? "{}" : "{\"success\":[{\"request_txn\":" + Txn(depth - 1) + "}]}";

        var deepest = Read<TxnRequest>(Txn((JsonpbReader.MaxDepth - 1) / 3));

        Assert.Equal(deepest, TxnRequest.Parser.ParseFrom(deepest.ToByteArray()));
    }

    [Fact]
    public void Every_descriptor_of_the_api_can_be_read_from_an_empty_object()
    {
        foreach (var method in EtcdShield.Api.EtcdApi.Methods)
        {
            foreach (var descriptor in new MessageDescriptor[] { method.InputType, method.OutputType })
            {
                Assert.Equal(descriptor.Parser.ParseFrom(ByteString.Empty), JsonpbReader.Read(descriptor, "{}"u8));
            }
        }
    }
}
