namespace EtcdShield.LoadGen.Measure;

/// <summary>
/// `EtcdShield.LoadGen selftest`: checks the histogram against exact percentiles of sorted samples (within its
/// 1/128 bucket resolution) and its merge, so a wrong p99 can never pass for a measurement. run.sh runs it first.
/// </summary>
internal static class HistogramSelfTest
{
    public static int Run()
    {
        var random = new Random(12345);
        var failures = 0;
        foreach (var (name, sample) in new (string, Func<long>)[]
        {
            ("uniform 0..1ms", () => random.NextInt64(0, 1_000_000)),
            ("log-uniform 100ns..10s", () => (long)Math.Exp(random.NextDouble() * Math.Log(1e8)) * 100),
            ("small exact", () => random.NextInt64(0, 128)),
        })
        {
            var values = new long[200_000];
            var halves = new[] { new LatencyHistogram(), new LatencyHistogram() };
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = sample();
                halves[i % 2].Record(values[i]);
            }

            var merged = new LatencyHistogram();
            merged.Add(halves[0]);
            merged.Add(halves[1]);
            Array.Sort(values);
            foreach (var p in new[] { 0.0, 50, 90, 99, 99.9, 100 })
            {
                var exact = values[Math.Max(0, (int)Math.Ceiling(p / 100 * values.Length) - 1)];
                var measured = merged.ValueAtPercentile(p);
                var tolerance = Math.Max(1, exact / 64.0);
                if (Math.Abs(measured - exact) > tolerance)
                {
                    Console.WriteLine($"selftest: FAIL {name} p{p}: {measured} vs exact {exact}");
                    failures++;
                }
            }

            if (merged.Count != values.Length || merged.MaxNanoseconds != values[^1] || merged.MinNanoseconds != values[0])
            {
                Console.WriteLine($"selftest: FAIL {name}: count/min/max after merge");
                failures++;
            }
        }

        for (var v = 0L; v < 1L << 40; v = (v * 3 / 2) + 1)
        {
            var index = LatencyHistogram.IndexOf(v);
            if (LatencyHistogram.LowestOf(index) > v || LatencyHistogram.LowestOf(index + 1) <= v)
            {
                Console.WriteLine($"selftest: FAIL bucket bounds at {v}");
                failures++;
                break;
            }
        }

        Console.WriteLine(failures == 0 ? "selftest: histogram ok" : $"selftest: {failures} failure(s)");
        return failures == 0 ? 0 : 1;
    }
}
