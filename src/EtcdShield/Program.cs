using EtcdShield.Hosting;
using EtcdShield.Migration;

// "etcdshield keys ..." manages the key-encryption key, "etcdshield migrate" re-encrypts stored values;
// anything else runs the proxy.
return args switch
{
    ["keys", .. var rest] => await KeysCommand.RunAsync(rest, Console.Out, Console.Error).ConfigureAwait(false),
    ["migrate", .. var rest] => await MigrateCommand.RunAsync(rest).ConfigureAwait(false),
    _ => await ServeCommand.RunAsync(args).ConfigureAwait(false),
};
