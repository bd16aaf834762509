using EtcdShield.Hosting;

return await ServeCommand.RunAsync(args).ConfigureAwait(false);
