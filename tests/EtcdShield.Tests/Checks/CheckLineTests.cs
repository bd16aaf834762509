using EtcdShield.Checks;

namespace EtcdShield.Tests.Checks;

public sealed class CheckLineTests
{
    [Theory]
    [InlineData("Ok", "ok   policy: fine")]
    [InlineData("Warn", "warn policy: fine")]
    [InlineData("Fail", "FAIL policy: fine")]
    public void The_verdict_fills_the_first_five_columns(string status, string expected) =>
        Assert.Equal(expected, new CheckLine(Enum.Parse<CheckStatus>(status), "policy", "fine").ToString());

    [Fact]
    public void A_detail_over_several_lines_stays_on_one()
    {
        var line = new CheckLine(CheckStatus.Fail, "etcd", "first\nsecond\r\nthird").ToString();

        Assert.Equal("FAIL etcd: first second third", line);
    }

    [Fact]
    public void A_closed_report_takes_no_more_lines()
    {
        var report = new CheckReport();
        report.Ok("a", "before");
        var closed = report.Close(new CheckLine(CheckStatus.Fail, "a", "timed out"));
        report.Ok("a", "after");

        Assert.Equal(["ok   a: before", "FAIL a: timed out"], closed.Select(l => l.ToString()));
        Assert.Equal(2, report.Close().Count);
    }
}
