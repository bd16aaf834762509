using EtcdShield.Hosting;

// "etcdshield keys ..." manages the key-encryption key; anything else runs the proxy.
return args is ["keys", .. var rest]
    ? await KeysCommand.RunAsync(rest, Console.Out, Console.Error).ConfigureAwait(false)
    : await ServeCommand.RunAsync(args).ConfigureAwait(false);
