using EtcdShield.Fuzz;

// EtcdShield.Fuzz seeds DIR                 writes every target's seed corpus (and the CAs the CRL target trusts) to DIR
// EtcdShield.Fuzz TARGET DIR                runs TARGET under afl-fuzz (SharpFuzz's fork server), DIR as written by seeds
// EtcdShield.Fuzz TARGET DIR INPUT          runs TARGET once on the file INPUT: a crash throws, with its stack trace
var targets = FuzzTarget.All.ToDictionary(t => t.Name, StringComparer.Ordinal);
switch (args)
{
    case ["seeds", var directory]:
        foreach (var target in targets.Values)
        {
            var corpus = Directory.CreateDirectory(Path.Combine(directory, "seeds", target.Name)).FullName;
            foreach (var (name, bytes) in target.Seeds(directory))
            {
                File.WriteAllBytes(Path.Combine(corpus, name), bytes);
            }
        }

        return 0;
    case [var name, var directory] when targets.TryGetValue(name, out var target):
        // Prepared inside the fork server: instrumented code may run only once afl's shared memory is attached.
        FuzzAction? run = null;
        SharpFuzz.Fuzzer.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            run ??= target.Prepare(directory);
            run(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        });
        return 0;
    case [var name, var directory, var input] when targets.TryGetValue(name, out var target):
        target.Prepare(directory)(File.ReadAllBytes(input));
        Console.WriteLine($"{name}: {input} is handled");
        return 0;
    default:
        Console.Error.WriteLine($"usage: EtcdShield.Fuzz seeds DIR | TARGET DIR [INPUT]; targets: {string.Join(", ", targets.Keys)}");
        return 2;
}
