using EtcdShield.Hosting;
using EtcdShield.Migration;

return args.FirstOrDefault() switch
{
    "migrate" => await MigrateCommand.RunAsync(args[1..]).ConfigureAwait(false),
    _ => await ServeCommand.RunAsync(args).ConfigureAwait(false),
};
