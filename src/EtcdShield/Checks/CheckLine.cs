namespace EtcdShield.Checks;

/// <summary>
/// One line of the output: <c>ok   name: detail</c>, <c>warn name: detail</c> or <c>FAIL name: detail</c>. The verdict
/// takes the first five columns so that <c>grep '^FAIL'</c> finds every failure and <c>cut -c6-</c> the rest.
/// </summary>
internal sealed record CheckLine(CheckStatus Status, string Check, string Detail)
{
    public override string ToString()
    {
        var verdict = Status switch
        {
            CheckStatus.Ok => "ok  ",
            CheckStatus.Warn => "warn",
            _ => "FAIL",
        };

        // One line per check whatever a message holds: an exception's text may span lines.
        var detail = Detail.ReplaceLineEndings(" ");
        return $"{verdict} {Check}: {detail}";
    }
}
