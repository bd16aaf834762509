using EtcdShield.LoadGen;

if (args.Length == 0 || args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(BenchOptions.Usage);
    return args.Length == 0 ? 2 : 0;
}

if (args[0] == "selftest")
{
    return EtcdShield.LoadGen.Measure.HistogramSelfTest.Run();
}

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    await Console.Error.WriteLineAsync("loadgen: " + e.Message).ConfigureAwait(false);
    return 2;
}

return await BenchmarkSession.RunAsync(options).ConfigureAwait(false);
