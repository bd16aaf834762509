using System.Globalization;
using System.Net;
using System.Text;

namespace EtcdShield.LoadGen.Report;

/// <summary>
/// chart.svg: grouped bars of each target's ops/s ratio to direct mTLS etcd, one group per workload, with the 1.0
/// line drawn across. Written by hand so the bench needs no plotting package and the file diffs as text.
/// </summary>
internal static class SvgChart
{
    private static readonly string[] Colors = ["#9e9e9e", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];

    private const int Left = 60;
    private const int Top = 48;
    private const int PlotHeight = 300;
    private const int BarWidth = 12;
    private const int GroupGap = 18;

    public static string Write(BenchReport report)
    {
        var workloads = report.Workloads.ToList();
        var targets = report.UnaryTargets.ToList();
        var groupWidth = (targets.Count * BarWidth) + GroupGap;
        var plotWidth = Math.Max(420, workloads.Count * groupWidth);
        var width = Left + plotWidth + 20;
        var legendTop = Top + PlotHeight + 95;
        var height = legendTop + (targets.Count * 18) + 10;

        var ratios = report.Summaries.Where(s => s.RatioToMtls is not null).Select(s => s.RatioToMtls!.Value).DefaultIfEmpty(1).ToList();
        var max = Math.Ceiling(Math.Max(1.2, ratios.Max()) * 5) / 5;
        double Y(double ratio) => Top + PlotHeight - (ratio / max * PlotHeight);

        var svg = new StringBuilder();
        Add(svg, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">");
        Add(svg, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        Add(svg, $"<text x=\"{Left}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">ops/s relative to direct mTLS etcd (dashed line = 1.0×)</text>");
        Add(svg, $"<text x=\"{Left}\" y=\"33\" fill=\"#555\">{Encode(report.Mode)} run, {report.Started:yyyy-MM-dd}, {report.Settings.Clients} clients, {report.Settings.Connections} connections, median of {report.Rounds} round(s)</text>");

        var step = max <= 2 ? 0.2 : max <= 5 ? 0.5 : 1.0;
        for (var tick = 0.0; tick <= max + 1e-9; tick += step)
        {
            var y = Y(tick);
            Add(svg, $"<line x1=\"{Left}\" y1=\"{y:0.0}\" x2=\"{Left + plotWidth}\" y2=\"{y:0.0}\" stroke=\"#e0e0e0\"/>");
            Add(svg, $"<text x=\"{Left - 6}\" y=\"{y + 4:0.0}\" text-anchor=\"end\">{tick:0.0}×</text>");
        }

        for (var w = 0; w < workloads.Count; w++)
        {
            var groupX = Left + (GroupGap / 2) + (w * groupWidth);
            for (var t = 0; t < targets.Count; t++)
            {
                var summary = report.Summaries.FirstOrDefault(s => s.Workload == workloads[w] && s.Target == targets[t]);
                if (summary?.RatioToMtls is not { } ratio)
                {
                    continue;
                }

                var x = groupX + (t * BarWidth);
                var y = Y(ratio);
                Add(svg, $"<rect x=\"{x}\" y=\"{y:0.0}\" width=\"{BarWidth - 1}\" height=\"{Top + PlotHeight - y:0.0}\" fill=\"{Colors[t % Colors.Length]}\"><title>{Encode(targets[t].Label)}, {Encode(workloads[w].Id)}: {ratio:0.00}× ({summary.MedianOpsPerSecond:0} ops/s)</title></rect>");
            }

            var labelX = groupX + (targets.Count * BarWidth / 2.0);
            var labelY = Top + PlotHeight + 12;
            Add(svg, $"<text x=\"{labelX:0.0}\" y=\"{labelY}\" text-anchor=\"end\" transform=\"rotate(-40 {labelX:0.0} {labelY})\">{Encode(workloads[w].Id)}</text>");
        }

        Add(svg, $"<line x1=\"{Left}\" y1=\"{Y(1):0.0}\" x2=\"{Left + plotWidth}\" y2=\"{Y(1):0.0}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>");
        Add(svg, $"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Top + PlotHeight}\" stroke=\"black\"/>");
        Add(svg, $"<line x1=\"{Left}\" y1=\"{Top + PlotHeight}\" x2=\"{Left + plotWidth}\" y2=\"{Top + PlotHeight}\" stroke=\"black\"/>");

        for (var t = 0; t < targets.Count; t++)
        {
            var y = legendTop + (t * 18);
            Add(svg, $"<rect x=\"{Left}\" y=\"{y - 10}\" width=\"12\" height=\"12\" fill=\"{Colors[t % Colors.Length]}\"/>");
            Add(svg, $"<text x=\"{Left + 18}\" y=\"{y}\">{Encode(targets[t].Label)}</text>");
        }

        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static void Add(StringBuilder svg, FormattableString element) => svg.AppendLine(element.ToString(CultureInfo.InvariantCulture));

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
